"""``run_experiment(config) -> Results``: the weak-to-strong graph, top to bottom.

task → splits → each weak member on GT(weak_train) → its soft labels on transfer/val/test
              → ceiling: strong on GT(transfer)
              → one student per method: strong on weak labels(transfer), selected on weak labels(val)
              → evaluation on test → results.json
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weaklift.config import ExperimentConfig, MethodSpec, ModelConfig
from weaklift.methods import METHODS
from weaklift.models.loading import model_fingerprint
from weaklift.models.tfidf import TFIDF_MODEL
from weaklift.stages import (
    StageContext,
    TrainRequest,
    evaluation_stage,
    genft_stage,
    ladder_evaluation_stage,
    one_hot,
    splits_stage,
    tfidf_member_stages,
    train_stage,
    weak_labels_stage,
)
from weaklift.store import Artifact, ArtifactStore, stable_hash, write_json_atomic
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
    for side in (*cfg.weak_members, cfg.strong):
        if side.model != TFIDF_MODEL:
            model_fingerprint(side.model)  # an unknown model fails here, before any work
    data = load_task(cfg.task)  # task.seed fixes the data; seed only splits and training
    store = store or ArtifactStore(Path(cfg.output_dir) / "artifacts")
    ctx = StageContext(store=store, data=data, cfg=cfg)
    k = data.num_classes

    # 1. Disjoint splits of the task's examples.
    splits_stage(ctx)

    # 2. Each weak supervisor learns ground truth on weak_train, then labels transfer, val and test.
    #    Members are cached one by one, so adding a member reuses the others.
    members = {member.label: weak_member_labels(ctx, member) for member in cfg.weak_members}
    member_probs = {
        split: np.stack([m.arrays()[split] for m in members.values()], axis=1)
        for split in ("transfer", "val")
    }
    members_key = stable_hash([m.key for m in members.values()])  # order matters: (N, M, K) targets

    # 3. The strong ceiling learns ground truth on the transfer split (after the optional generative
    #    finetuning, which ceiling and students share so the comparison stays fair).
    strong = genft_stage(ctx, cfg.strong)
    ceiling = train_stage(
        ctx,
        TrainRequest(
            stage="ceiling",
            model_cfg=strong,
            train_split="transfer",
            targets=one_hot(ctx.labels("transfer"), k),
            val_labels=ctx.labels("val"),
            targets_key=ctx.splits_key,
            predict_splits=("test",),
        ),
    )

    # 4. One strong student per method, on weak labels only (selection included): multi-weak methods
    #    see every member's labels (N, M, K); the others see the members' mean (N, K).
    students = {}
    for spec in cfg.methods:
        multi = METHODS[spec.name].multi_weak
        targets = member_probs["transfer"] if multi else member_probs["transfer"].mean(axis=1)
        students[spec.label] = train_stage(
            ctx,
            TrainRequest(
                stage="student",
                model_cfg=strong,
                train_split="transfer",
                targets=targets,
                val_labels=member_probs["val"].mean(axis=1).argmax(1),
                targets_key=members_key,
                method=spec,
                predict_splits=("test",),
            ),
        )

    # 5. Bootstrapping (optional): m1 learns m0's labels, m2 learns m1's, ... up to the strong model.
    ladders = (
        {spec.label: run_ladder(ctx, spec, next(iter(members.values()))) for spec in cfg.methods}
        if cfg.ladder
        else {}
    )

    # 6. Evaluate everything on test; PGR with bootstrap CIs.
    metrics = evaluation_stage(ctx, members, ceiling, students).json("metrics")
    if ladders:
        metrics["ladder"] = ladder_evaluation_stage(ctx, members, ceiling, students, ladders).json(
            "ladder"
        )
    return _write_results(cfg, data.name, metrics, data.label_names)


def run_ladder(ctx: StageContext, spec: MethodSpec, weak_labels: Artifact) -> list[Artifact]:
    """Rungs 1..k of the ladder; each is trained on the previous rung's soft labels of transfer."""
    rungs, previous = [], weak_labels
    for rung_cfg in ctx.cfg.ladder[1:]:
        labels = previous.arrays() if previous is weak_labels else previous.arrays("predictions")
        previous = train_stage(
            ctx,
            TrainRequest(
                stage="rung",
                model_cfg=rung_cfg,
                train_split="transfer",
                targets=labels["transfer"],
                val_labels=labels["val"].argmax(1),
                targets_key=previous.key,
                method=spec,
                predict_splits=("transfer", "val", "test"),
            ),
        )
        rungs.append(previous)
    return rungs


def weak_member_labels(ctx: StageContext, member: ModelConfig) -> Artifact:
    """Train one weak member on GT(weak_train) and return its soft labels on transfer/val/test."""
    if member.model == TFIDF_MODEL:
        return tfidf_member_stages(ctx, member)[1]
    weak_model = train_stage(
        ctx,
        TrainRequest(
            stage="weak_model",
            model_cfg=member,
            train_split="weak_train",
            targets=one_hot(ctx.labels("weak_train"), ctx.data.num_classes),
            val_labels=ctx.labels("val"),
            targets_key=ctx.splits_key,
        ),
    )
    return weak_labels_stage(ctx, weak_model, member)


def _write_results(
    cfg: ExperimentConfig, task_name: str, metrics: dict, label_names: list[str]
) -> Results:
    results = {
        "task": task_name,
        "weak": metrics["weak"],
        "ceiling": metrics["ceiling"],
        "students": metrics["students"],
        "weak_members": metrics["weak_members"],
        "ensemble": metrics["ensemble"],
        "best_member": metrics["best_member"],
        "ladder": metrics.get("ladder", {}),
        "num_test": metrics["num_test"],
        "label_names": label_names,
        "models": {"weak": [m.label for m in cfg.weak_members], "strong": cfg.strong.model},
        "config": cfg.model_dump(mode="json"),
    }
    run_dir = (
        Path(cfg.output_dir)
        / "runs"
        / f"{task_name}-{stable_hash(cfg.model_dump(mode='json'), 10)}"
    )
    write_json_atomic(run_dir / "results.json", results)
    return Results(results, run_dir)
