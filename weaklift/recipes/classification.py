"""Classification (and reward modelling): Burns et al.'s weak-to-strong graph, top to bottom.

task → splits of every seed → probe features once, over the union of every seed's rows
     → per seed: each weak member on GT(weak_train), checked on GT(weak_holdout)
                 → its soft labels on weak_holdout/transfer/val/test
                 → ceiling: strong on GT(transfer)
                 → one student per method: strong on weak labels(transfer)
                 → controls (oracle: GT labels, shuffled: permuted weak labels) through the student path
                 → evaluation on that seed's test split
     → summary over seeds: means, spread, PGR with a seeds × test-examples CI → results.json

No ground truth outside weak_train/weak_holdout reaches a weak model or a student: weak models check
themselves on weak_holdout, students (with train.select=weak_agreement) on weak labels of val, and
the best weak member is chosen on weak_holdout.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from weaklift.config import SELECTION_RULES, ExperimentConfig, MethodSpec, ModelConfig
from weaklift.methods import METHODS, validate_method_options
from weaklift.metrics import accuracy
from weaklift.models.tfidf import TFIDF_MODEL
from weaklift.recipes.checks import check_method_list, check_preference
from weaklift.recipes.results import Results, save_results
from weaklift.recipes.rows import model_row
from weaklift.stages import (
    SeedModels,
    StageContext,
    TrainRequest,
    bucket_evaluation_stage,
    crossfit_stage,
    evaluation_stage,
    genft_stage,
    one_hot,
    splits_stage,
    summarise_seeds,
    tfidf_member_stages,
    train_stage,
    weak_labels_stage,
)
from weaklift.store import Artifact, Store, stable_hash
from weaklift.tasks import TASKS, ClassificationData

log = logging.getLogger("weaklift")

DEFAULTS: dict[str, Any] = {"seeds": 3, "controls": True}


def check(cfg: ExperimentConfig) -> None:
    """Methods exist and fit the members (pairwise ones for reward models); ladders take
    single-weak methods; preference optimisation belongs to generation and pair tasks."""
    check_method_list(
        cfg,
        METHODS,
        validate_method_options,
        example="methods=[xent,logconf]",
        unknown="unknown method {name!r}",
    )
    if cfg.ladder:
        for i, spec in enumerate(cfg.methods):
            if METHODS[spec.name].multi_weak:
                raise ValueError(
                    f"methods.{i}: {spec.name} needs several weak members, but a ladder's rungs "
                    "each have one supervisor; use a single-weak method (e.g. xent, logconf)"
                )
    if cfg.preference is not None:
        check_preference(cfg, cfg.preference)  # its own errors first: they name the exact field
        if cfg.preference.students is not None:
            raise ValueError(
                "preference.students: only generation tasks train students before preference "
                "optimisation; remove it"
            )
        raise ValueError(
            f"preference: task {cfg.task.name!r} is a classification task; preference "
            "optimisation runs on generation and pair tasks; remove it"
        )
    if "generation" in cfg.model_fields_set:
        raise ValueError(
            f"generation: task {cfg.task.name!r} is a classification task; decoding and prompt "
            "options apply to generation and pair tasks; remove it"
        )
    spec = TASKS.get(cfg.task.name)
    if spec is not None and spec.kind == "preference":
        _check_reward_models(cfg)


def _check_reward_models(cfg: ExperimentConfig) -> None:
    """Preference pairs need pairwise (Bradley–Terry) models and methods; say so before any work."""
    for i, member in enumerate(cfg.weak_members):
        if member.model == TFIDF_MODEL:
            where = f"weak.{i}.model" if isinstance(cfg.weak, list) else "weak.model"
            raise ValueError(
                f"{where}: tfidf scores single texts and has no pairwise form, so it cannot "
                f"supervise the preference task {cfg.task.name}; use a neural weak model"
            )
    for i, method in enumerate(cfg.methods):
        if not METHODS[method.name].pairwise:
            raise ValueError(
                f"methods.{i}: {method.name} has no pairwise form (its loss depends on each "
                f"reward, not only on r(a) − r(b)), so it cannot train a reward model for "
                f"{cfg.task.name}; use multi_naive or joint"
            )


def run(cfg: ExperimentConfig, store: Store, data: ClassificationData) -> Results:
    """Every seed's models and their evaluation; results.json with the summary over seeds."""
    backbones: dict = {}  # loaded once, shared by every seed
    memo: dict = {}  # feature arrays read once, shared by every seed
    contexts = [
        StageContext(
            store=store,
            data=data,
            cfg=cfg.model_copy(update={"seed": s}),
            seed_offset=s - cfg.run_seeds[0],
            _backbones=backbones,
            memo=memo,
        )
        for s in cfg.run_seeds
    ]

    # 1. Disjoint splits for every seed; probe features are extracted once for all their rows.
    for ctx in contexts:
        splits_stage(ctx)
    feature_rows = np.unique(np.concatenate([ctx.splits.all_rows() for ctx in contexts]))
    for ctx in contexts:
        ctx.feature_rows = feature_rows

    # 2. Every model, once per seed; 3. the summary over seeds.
    evaluations, seed_models = [], []
    for ctx in contexts:
        log.info("seed %d (%d of %d)", ctx.cfg.seed, len(evaluations) + 1, len(contexts))
        seed_models.append(train_seed(ctx))
        evaluations.append(evaluation_stage(ctx, seed_models[-1]))
    ladder_models = [m.label for m in cfg.ladder[1:]] if cfg.ladder else []
    summary = summarise_seeds(cfg.run_seeds, evaluations, ladder_models, cfg.bootstrap_samples)

    # 4. Accuracy by difficulty bucket: the split.by column, or the task's own (chess: rating).
    bucket_column = cfg.split.by or data.difficulty
    if bucket_column:
        summary["by_bucket"] = bucket_evaluation_stage(contexts, seed_models, bucket_column).json(
            "buckets"
        )
    return _write_results(cfg, data.name, summary, data.label_names)


def train_seed(ctx: StageContext) -> SeedModels:
    """Weak members, ceiling, students, controls and ladders of one seed (ctx.cfg.seed)."""
    cfg, k = ctx.cfg, ctx.data.num_classes

    # Each weak supervisor learns ground truth on weak_train, then labels the other splits.
    # Members are cached one by one, so adding a member reuses the others.
    members = {member.label: weak_member_labels(ctx, member) for member in cfg.weak_members}
    member_probs = {
        split: np.stack([m.arrays()[split] for m in members.values()], axis=1)
        for split in ("transfer", "val")
    }  # (N, M, K)
    members_key = stable_hash([m.key for m in members.values()])  # order matters: (N, M, K) targets
    member_accuracy = [
        accuracy(m.arrays()["weak_holdout"], ctx.labels("weak_holdout")) for m in members.values()
    ]  # weak-side GT only: what dynamic ensemble weights reward
    weak_val_labels = member_probs["val"].mean(axis=1).argmax(1)

    # The strong ceiling learns ground truth on the transfer split (after the optional generative
    # finetuning, which ceiling and students share so the comparison stays fair).
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

    # One strong student per method, on weak labels only: multi-weak methods see every member's
    # labels (N, M, K) and the members' weak-side accuracies; the others see the members' mean.
    def student(stage: str, spec: MethodSpec, targets: np.ndarray, targets_key: str) -> Artifact:
        return train_stage(
            ctx,
            TrainRequest(
                stage=stage,
                model_cfg=strong,
                train_split="transfer",
                targets=targets,
                val_labels=weak_val_labels,
                targets_key=targets_key,
                method=spec,
                predict_splits=("test",),
            ),
        )

    students = {}
    for spec in cfg.methods:
        if METHODS[spec.name].multi_weak:
            students[spec.label] = student(
                "student",
                with_member_accuracy(spec, member_accuracy),
                member_probs["transfer"],
                members_key,
            )
        else:
            students[spec.label] = student(
                "student", spec, member_probs["transfer"].mean(axis=1), members_key
            )

    # Controls: the same student path on GT labels (should reach the ceiling) and on weak labels
    # permuted across transfer examples (should fall to chance).
    controls = {}
    if cfg.controls:
        xent = MethodSpec(name="xent")
        controls["oracle"] = student(
            "control",
            xent,
            one_hot(ctx.labels("transfer"), k),
            stable_hash(["oracle", ctx.splits_key]),
        )
        permutation = np.random.default_rng(cfg.seed).permutation(len(ctx.splits["transfer"]))
        controls["shuffled"] = student(
            "control",
            xent,
            member_probs["transfer"].mean(axis=1)[permutation],
            stable_hash(["shuffled", members_key, permutation.tolist()]),
        )

    # Bootstrapping (optional): m1 learns m0's labels, m2 learns m1's, ... up to the strong model.
    ladders = (
        {spec.label: run_ladder(ctx, spec, next(iter(members.values()))) for spec in cfg.methods}
        if cfg.ladder
        else {}
    )
    return SeedModels(members, ceiling, students, controls, ladders)


def with_member_accuracy(spec: MethodSpec, member_accuracy: list[float]) -> MethodSpec:
    """The spec a multi-weak method trains with: its ``member_accuracy`` option (if it has one)
    filled with each member's weak_holdout accuracy, so the cache key covers them."""
    if "member_accuracy" not in METHODS[spec.name].Options.model_fields:
        return spec
    return spec.model_copy(
        update={
            "options": {**spec.options, "member_accuracy": [round(a, 6) for a in member_accuracy]}
        }
    )


def run_ladder(ctx: StageContext, spec: MethodSpec, weak_labels: Artifact) -> list[Artifact]:
    """Rungs 1..k of the ladder; each learns the previous rung's soft labels of transfer.

    Every intermediate rung is cross-fitted (two halves of transfer, each labelled by the model
    trained on the other), so no rung labels an example it was trained on. The last rung, the
    strong student, trains on all of transfer like the direct student beside it.
    """
    rungs, previous = [], weak_labels
    last = len(ctx.cfg.ladder) - 2
    for i, rung_cfg in enumerate(ctx.cfg.ladder[1:]):
        labels = previous.arrays() if previous is weak_labels else previous.arrays("predictions")
        request = TrainRequest(
            stage="rung",
            model_cfg=rung_cfg,
            train_split="transfer",
            targets=labels["transfer"],
            val_labels=labels["val"].argmax(1),
            targets_key=previous.key,
            method=spec,
            predict_splits=("test",) if i == last else ("transfer", "val", "test"),
        )
        previous = train_stage(ctx, request) if i == last else crossfit_stage(ctx, request)
        rungs.append(previous)
    return rungs


def weak_member_labels(ctx: StageContext, member: ModelConfig) -> Artifact:
    """Train one weak member on GT(weak_train) and return its soft labels on the other splits."""
    if member.model == TFIDF_MODEL:
        return tfidf_member_stages(ctx, member)[1]
    weak_model = train_stage(
        ctx,
        TrainRequest(
            stage="weak_model",
            model_cfg=member,
            train_split="weak_train",
            targets=one_hot(ctx.labels("weak_train"), ctx.data.num_classes),
            val_labels=ctx.labels("weak_holdout"),
            val_split="weak_holdout",
            targets_key=ctx.splits_key,
        ),
    )
    return weak_labels_stage(ctx, weak_model, member)


def _write_results(
    cfg: ExperimentConfig, task_name: str, summary: dict, label_names: list[str]
) -> Results:
    results = {
        "task": task_name,
        "kind": "classification",
        "selection": {"rule": cfg.train.select, "means": SELECTION_RULES[cfg.train.select]},
        "pgr_ci_method": "percentile bootstrap over seeds and test examples: each resample draws "
        "the seeds with replacement, then each drawn seed's test examples with replacement, "
        f"jointly for every model ({cfg.bootstrap_samples} resamples)",
        **summary,
        "label_names": label_names,
        "models": {"weak": [m.label for m in cfg.weak_members], "strong": cfg.strong.model},
        "config": cfg.model_dump(mode="json"),
    }
    return save_results(cfg, task_name, results)


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Weak supervisor (and each member of an ensemble), ceiling, students and controls."""
    out = [model_row("weak", "", results["weak"])]
    if len(results.get("weak_members", {})) > 1:
        out += [model_row("weak_member", k, m) for k, m in results["weak_members"].items()]
    out.append(model_row("ceiling", "", results["ceiling"]))
    out += [model_row("student", k, s) for k, s in results["students"].items()]
    out += [model_row("control", k, c) for k, c in results.get("controls", {}).items()]
    return out
