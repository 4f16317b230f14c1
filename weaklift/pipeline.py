"""``run_experiment(config) -> Results``: the weak-to-strong graph, top to bottom.

    task → splits → weak model on GT(weak_train) → weak labels on transfer/val/test
                  → ceiling: strong on GT(transfer)
                  → one student per method: strong on weak labels(transfer), selected on weak labels(val)
                  → evaluation on test → results.json
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weaklift.config import ExperimentConfig
from weaklift.models.loading import model_fingerprint
from weaklift.stages import (
    StageContext,
    TrainRequest,
    evaluation_stage,
    one_hot,
    splits_stage,
    train_stage,
    weak_labels_stage,
)
from weaklift.store import ArtifactStore, stable_hash, write_json_atomic
from weaklift.tasks import load_task

log = logging.getLogger("weaklift")


@dataclass(frozen=True)
class Results:
    """What a run produced: the results dict (results.json) and the run folder."""

    data: dict[str, Any]
    run_dir: Path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def run_experiment(cfg: ExperimentConfig, store: ArtifactStore | None = None) -> Results:
    for side in (cfg.weak, cfg.strong):
        model_fingerprint(side.model)  # an unknown model fails here, before any work
    data = load_task(cfg.task, cfg.seed)
    store = store or ArtifactStore(Path(cfg.output_dir) / "artifacts")
    ctx = StageContext(store=store, data=data, cfg=cfg)
    k = data.num_classes

    # 1. Disjoint splits of the task's examples.
    splits_stage(ctx)

    # 2. The weak supervisor learns ground truth on weak_train, then labels transfer, val and test.
    weak_model = train_stage(
        ctx,
        TrainRequest(
            stage="weak_model",
            model_cfg=cfg.weak,
            train_split="weak_train",
            targets=one_hot(ctx.labels("weak_train"), k),
            val_labels=ctx.labels("val"),
            targets_key=ctx.splits_key,
        ),
    )
    weak_labels = weak_labels_stage(ctx, weak_model, cfg.weak)
    weak_probs = weak_labels.arrays()

    # 3. The strong ceiling learns ground truth on the transfer split.
    ceiling = train_stage(
        ctx,
        TrainRequest(
            stage="ceiling",
            model_cfg=cfg.strong,
            train_split="transfer",
            targets=one_hot(ctx.labels("transfer"), k),
            val_labels=ctx.labels("val"),
            targets_key=ctx.splits_key,
            predict_splits=("test",),
        ),
    )

    # 4. One strong student per method, on weak labels only (selection included).
    students = {
        spec.label: train_stage(
            ctx,
            TrainRequest(
                stage="student",
                model_cfg=cfg.strong,
                train_split="transfer",
                targets=weak_probs["transfer"],
                val_labels=weak_probs["val"].argmax(1),
                targets_key=weak_labels.key,
                method=spec,
                predict_splits=("test",),
            ),
        )
        for spec in cfg.methods
    }

    # 5. Evaluate everything on test; PGR with bootstrap CIs.
    metrics = evaluation_stage(ctx, weak_labels, ceiling, students).json("metrics")
    return _write_results(cfg, data.name, metrics, data.label_names)


def _write_results(cfg: ExperimentConfig, task_name: str, metrics: dict, label_names: list[str]) -> Results:
    results = {
        "task": task_name,
        "weak": metrics["weak"],
        "ceiling": metrics["ceiling"],
        "students": metrics["students"],
        "num_test": metrics["num_test"],
        "label_names": label_names,
        "models": {"weak": cfg.weak.model, "strong": cfg.strong.model},
        "config": cfg.model_dump(mode="json"),
    }
    run_dir = Path(cfg.output_dir) / "runs" / f"{task_name}-{stable_hash(cfg.model_dump(mode='json'), 10)}"
    write_json_atomic(run_dir / "results.json", results)
    return Results(results, run_dir)
