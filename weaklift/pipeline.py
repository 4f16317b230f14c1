"""``run_experiment(config) -> Results``: the weak-to-strong graph, top to bottom.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weaklift.config import (
    SELECTION_RULES,
    ExperimentConfig,
    MethodSpec,
    ModelConfig,
    PreferenceConfig,
)
from weaklift.methods import METHODS
from weaklift.metrics import accuracy
from weaklift.models.loading import model_fingerprint
from weaklift.models.tfidf import TFIDF_MODEL
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
from weaklift.stages.gen_preference import optimise_student_preferences
from weaklift.stages.generation import (
    GenTrainRequest,
    check_generation_models,
    gen_evaluation_stage,
    gen_train_stage,
    generations_stage,
    ground_truth,
    student_targets,
    trained_source,
)
from weaklift.stages.judges import judge_scores_stage, judged_pairs, pair_candidates_stage
from weaklift.stages.preference_opt import (
    LMSource,
    WeakComparison,
    file_pairs,
    preference_evaluation_stage,
    preference_train_stage,
)
from weaklift.store import Artifact, ArtifactStore, stable_hash, write_json_atomic
from weaklift.tasks import PairsData, load_task

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
    if cfg.task_kind == "generation":
        return _write_generation_results(
            cfg, data.name, run_generation_experiment(cfg, data, store)
        )
    if isinstance(data, PairsData):
        return run_pairs_experiment(cfg, data, store)

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
    rows = np.unique(np.concatenate([ctx.splits.all_rows() for ctx in contexts]))
    for ctx in contexts:
        ctx.feature_rows = rows

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


def run_pairs_experiment(cfg: ExperimentConfig, data: PairsData, store: ArtifactStore) -> Results:
    """Preference optimisation from a pairs file: policy = the strong LM, reference = its start.

    pairs → splits → one policy per loss (DPO/cDPO/IPO) on the transfer pairs
          → test pairs: the reference's own preference (before) vs each policy's (after)
    """
    ctx = StageContext(store=store, data=data, cfg=cfg)
    splits_stage(ctx)  # the pairs of weak_train and val are not used
    train_pairs, test_pairs = file_pairs(ctx, "transfer"), file_pairs(ctx, "test")
    losses = (cfg.preference or PreferenceConfig()).losses
    start = LMSource.from_model(cfg.strong.model)
    policies = {
        spec.label: preference_train_stage(ctx, start, cfg.strong, train_pairs, spec)
        for spec in losses
    }
    weak = None
    if (cfg.preference or PreferenceConfig()).weak_judges:
        # Weak-to-strong: the policy's own candidates for the transfer prompts, judged by the weak
        # members (never the file's replies), become the student's pairs; GT pairs give the ceiling.
        judges = {m.label: LMSource.from_model(m.model) for m in cfg.weak_members}
        judged, weak_pairs = judged_pairs(ctx, start, judges, train_pairs.prompts, train_pairs.key)
        ceiling_of = {}
        for spec in losses:
            label = f"{spec.label} · weak judges"
            policies[label] = preference_train_stage(ctx, start, cfg.strong, weak_pairs, spec)
            ceiling_of[label] = spec.label
        on_test = pair_candidates_stage(ctx, test_pairs)
        scores = {label: judge_scores_stage(ctx, j, on_test) for label, j in judges.items()}
        weak = WeakComparison(scores, judged.meta["weights"], ceiling_of)
        judged_summary = {k: judged.meta[k] for k in ("pairs", "prompts", "dropped", "weights")}
    metrics = preference_evaluation_stage(ctx, start, policies, test_pairs, weak).json("metrics")
    if weak is not None:
        metrics["judged_pairs"] = judged_summary
    results = {
        "task": data.name,
        "kind": "pairs",
        **metrics,
        "num_train_pairs": len(train_pairs),
        "models": {"policy": cfg.strong.model, "mode": cfg.strong.mode},
        "config": cfg.model_dump(mode="json"),
    }
    run_dir = Path(cfg.output_dir) / "runs" / f"{data.name}-{stable_hash(results['config'], 10)}"
    write_json_atomic(run_dir / "results.json", results)
    return Results(results, run_dir)


def _write_results(
    cfg: ExperimentConfig, task_name: str, summary: dict, label_names: list[str]
) -> Results:
    results = {
        "task": task_name,
        "selection": {"rule": cfg.train.select, "means": SELECTION_RULES[cfg.train.select]},
        "pgr_ci_method": "percentile bootstrap over seeds and test examples: each resample draws "
        "the seeds with replacement, then each drawn seed's test examples with replacement, "
        f"jointly for every model ({cfg.bootstrap_samples} resamples)",
        **summary,
        "label_names": label_names,
        "models": {"weak": [m.label for m in cfg.weak_members], "strong": cfg.strong.model},
        "config": cfg.model_dump(mode="json"),
    }
    return _save_results(cfg, task_name, results)


def _save_results(cfg: ExperimentConfig, task_name: str, results: dict) -> Results:
    run_dir = (
        Path(cfg.output_dir)
        / "runs"
        / f"{task_name}-{stable_hash(cfg.model_dump(mode='json'), 10)}"
    )
    write_json_atomic(run_dir / "results.json", results)
    return Results(results, run_dir)


# --- generation tasks (Cui et al. 2024) -------------------------------------------------------


def run_generation_experiment(cfg: ExperimentConfig, data, store: ArtifactStore) -> dict:
    """The generation graph; returns the metrics dict that results.json is written from."""
    check_generation_models(cfg)
    ctx = StageContext(store=store, data=data, cfg=cfg)
    g = cfg.generation

    # 1. Disjoint splits of the task's examples.
    splits_stage(ctx)

    # 2. Each weak generator learns GT(weak_train), then decodes transfer (n-best) and test (1-best).
    weak_models, transfer_nbest, weak_test = {}, {}, {}
    for member in cfg.weak_members:
        trained = gen_train_stage(
            ctx,
            GenTrainRequest("weak_generator", member, "weak_train", ground_truth(ctx, "weak_train"),
                            ctx.splits_key),
        )  # fmt: skip
        weak_models[member.label] = (member, trained)
        transfer_nbest[member.label] = generations_stage(ctx, member, trained, "transfer", g.n_best)
        weak_test[member.label] = generations_stage(ctx, member, trained, "test", 1)

    # 3. The ceiling: the strong model on GT(transfer), the same way.
    ceiling = gen_train_stage(
        ctx,
        GenTrainRequest("gen_ceiling", cfg.strong, "transfer", ground_truth(ctx, "transfer"),
                        ctx.splits_key),
    )  # fmt: skip
    ceiling_test = generations_stage(ctx, cfg.strong, ceiling, "test", 1)

    # 4. One student per method, on weak outputs of transfer only.
    students, trained_students = {}, {}
    for spec in cfg.methods:
        targets, targets_key = student_targets(ctx, spec, weak_models, transfer_nbest)
        trained_students[spec.label] = gen_train_stage(
            ctx,
            GenTrainRequest("gen_student", cfg.strong, "transfer", targets, targets_key, spec),
        )
        students[spec.label] = generations_stage(
            ctx, cfg.strong, trained_students[spec.label], "test", 1
        )

    # 5. Preference optimisation (optional): a student writes candidates for the transfer prompts,
    #    the weak generators judge them, best vs worst pairs train it further (one policy per loss).
    started_from, preference = {}, {}
    if cfg.preference is not None:
        judges = {label: trained_source(m, trained) for label, (m, trained) in weak_models.items()}
        for label in cfg.preference.students or list(trained_students):
            start = trained_source(cfg.strong, trained_students[label])
            outcome = optimise_student_preferences(ctx, cfg.preference, label, start, judges)
            students.update(outcome.generations)
            started_from.update({policy: label for policy in outcome.generations})
            preference[label] = outcome.report

    # 6. Task metric on test, bootstrap CIs, PGR (and each policy's gain over its start).
    metrics = gen_evaluation_stage(ctx, weak_test, ceiling_test, students, started_from)
    return {**metrics.json("metrics"), **({"preference": preference} if preference else {})}


def _write_generation_results(cfg: ExperimentConfig, task_name: str, metrics: dict) -> Results:
    results = {
        "task": task_name,
        "kind": "generation",
        **metrics,
        "notes": generation_notes(cfg),
        "models": {"weak": [m.label for m in cfg.weak_members], "strong": cfg.strong.model},
        "config": cfg.model_dump(mode="json"),
    }
    return _save_results(cfg, task_name, results)


def generation_notes(cfg: ExperimentConfig) -> list[str]:
    """What a generation run does not do that the config asks for (said, not silently ignored)."""
    notes = []
    if len(cfg.run_seeds) > 1:
        notes.append(
            f"a generation run trains one seed (seed={cfg.seed}); seeds={cfg.seeds} applies to "
            "classification runs only"
        )
    if cfg.controls:
        notes.append("the oracle and shuffled controls are not run for generation tasks")
    for note in notes:
        log.warning(note)
    return notes
