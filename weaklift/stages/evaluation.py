"""Stages that score models on test: accuracy, AUROC, ECE, PGR with bootstrap CIs, ladders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from weaklift.metrics import (
    agreement,
    agreement_by_supervisor,
    classification_summary,
    pgr,
    pgr_bootstrap_ci,
)
from weaklift.stages.context import StageContext
from weaklift.store import Artifact, save_json, stable_hash

EVAL_VERSION = 3  # 3: reliability bins, agreement split by supervisor correctness


# --- evaluation -----------------------------------------------------------------------------------


def evaluation_stage(
    ctx: StageContext,
    members: dict[str, Artifact],
    ceiling: Artifact,
    students: dict[str, Artifact],
) -> Artifact:
    """Accuracy/AUROC/ECE for every weak member, the ensemble, the ceiling and each student;
    PGR with a bootstrap CI (from the ensemble and, with several members, from the best member)."""
    params = {
        "bootstrap_samples": ctx.cfg.bootstrap_samples,
        "seed": ctx.cfg.seed,
        "students": sorted(students),
    }
    upstream = {
        "splits": ctx.splits_key,
        **{f"weak_labels/{label}": art.key for label, art in members.items()},
        "ceiling": ceiling.key,
        **{f"student/{label}": art.key for label, art in students.items()},
    }

    def compute(out: Path) -> dict:
        labels = ctx.labels("test")
        member_probs = np.stack(
            [art.arrays()["test"] for art in members.values()], axis=1
        )  # (N, M, K)
        weak_probs = member_probs.mean(axis=1)  # the ensemble's mean; the single member when M = 1
        weak = classification_summary(weak_probs, labels)
        member_summaries = {
            label: classification_summary(member_probs[:, m], labels)
            for m, label in enumerate(members)
        }
        best = max(
            range(len(members)), key=lambda m: member_summaries[list(members)[m]]["accuracy"]
        )
        ceiling_probs = ceiling.arrays("predictions")["test"]
        ceil = classification_summary(ceiling_probs, labels)
        references = {"": weak_probs}
        if len(members) > 1:
            references["_best_member"] = member_probs[:, best]
        student_results = {
            label: _student_metrics(
                ctx, art.arrays("predictions"), labels, references, ceiling_probs, weak_probs
            )
            for label, art in students.items()
        }
        metrics = {
            "num_test": int(len(labels)),
            "weak": weak,
            "weak_members": member_summaries,
            "ensemble": _ensemble_metrics(member_probs, labels) if len(members) > 1 else {},
            "best_member": list(members)[best],
            "ceiling": ceil,
            "students": student_results,
        }
        save_json(out, "metrics", metrics)
        return {}

    return ctx.store.get_or_compute("evaluation", EVAL_VERSION, params, upstream, compute)


def ladder_evaluation_stage(
    ctx: StageContext,
    members: dict[str, Artifact],
    ceiling: Artifact,
    students: dict[str, Artifact],
    ladders: dict[str, list[Artifact]],
) -> Artifact:
    """Per method: every rung's test metrics and PGR, and the direct weak → strong student beside them."""
    upstream = {
        "evaluation_inputs": stable_hash(
            [a.key for a in (*members.values(), ceiling, *students.values())]
        ),
        **{
            f"ladder/{label}": stable_hash([r.key for r in rungs])
            for label, rungs in ladders.items()
        },
    }
    params = {"bootstrap_samples": ctx.cfg.bootstrap_samples, "seed": ctx.cfg.seed}

    def compute(out: Path) -> dict:
        labels = ctx.labels("test")
        weak_probs = np.stack([a.arrays()["test"] for a in members.values()], axis=1).mean(axis=1)
        weak_correct = weak_probs.argmax(1) == labels
        ceiling_correct = ceiling.arrays("predictions")["test"].argmax(1) == labels
        result = {}
        for label, rungs in ladders.items():
            rows = []
            for rung_cfg, rung in zip(ctx.cfg.ladder[1:], rungs, strict=True):
                probs = rung.arrays("predictions")["test"]
                correct = probs.argmax(1) == labels
                summary = classification_summary(probs, labels)
                rows.append(
                    {
                        "model": rung_cfg.label,
                        **summary,
                        "pgr": pgr(
                            summary["accuracy"],
                            float(weak_correct.mean()),
                            float(ceiling_correct.mean()),
                        ),
                        "pgr_ci": list(
                            pgr_bootstrap_ci(
                                weak_correct,
                                correct,
                                ceiling_correct,
                                ctx.cfg.bootstrap_samples,
                                ctx.cfg.seed,
                            )
                        ),
                    }
                )
            direct = students[label].arrays("predictions")["test"]
            direct_summary = classification_summary(direct, labels)
            result[label] = {
                "rungs": rows,
                "direct": {
                    **direct_summary,
                    "pgr": pgr(
                        direct_summary["accuracy"],
                        float(weak_correct.mean()),
                        float(ceiling_correct.mean()),
                    ),
                },
            }
        save_json(out, "ladder", result)
        return {}

    return ctx.store.get_or_compute("ladder_evaluation", EVAL_VERSION, params, upstream, compute)


def _ensemble_metrics(member_probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy/AUROC of each way of combining the members into one label."""
    from weaklift.methods.ensemble import combine

    stacked = torch.as_tensor(member_probs)
    return {
        how: classification_summary(combine(stacked, how).numpy(), labels)
        for how in ("mean", "vote", "logpool")
    }


def _student_metrics(
    ctx: StageContext,
    predictions: dict[str, np.ndarray],
    labels: np.ndarray,
    references: dict[str, np.ndarray],
    ceiling_probs: np.ndarray,
    weak_probs: np.ndarray,
) -> dict:
    probs = predictions["test"]
    correct = probs.argmax(1) == labels
    ceiling_correct = ceiling_probs.argmax(1) == labels
    ceiling_accuracy = float(ceiling_correct.mean())
    result = classification_summary(probs, labels)
    for suffix, reference in references.items():
        reference_correct = reference.argmax(1) == labels
        result[f"pgr{suffix}"] = pgr(
            result["accuracy"], float(reference_correct.mean()), ceiling_accuracy
        )
        result[f"pgr{suffix}_ci"] = list(
            pgr_bootstrap_ci(
                reference_correct, correct, ceiling_correct, ctx.cfg.bootstrap_samples, ctx.cfg.seed
            )
        )
    result["agreement"] = agreement(probs, weak_probs)
    result.update(agreement_by_supervisor(probs, weak_probs, labels))
    uncertainty = predictions.get("test_uncertainty")
    if uncertainty is None:  # normalised entropy for softmax students
        uncertainty = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(1) / np.log(probs.shape[1])
    result["uncertainty_correct"] = (
        float(uncertainty[correct].mean()) if correct.any() else float("nan")
    )
    result["uncertainty_incorrect"] = (
        float(uncertainty[~correct].mean()) if (~correct).any() else float("nan")
    )
    return result
