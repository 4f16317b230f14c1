"""Scoring on test: one cached evaluation per seed, then a summary over seeds with PGR intervals.

The per-seed stage records point metrics and every model's per-example correctness on that seed's
test split; ``summarise_seeds`` averages over seeds and draws PGR intervals from a two-level
bootstrap (seeds, then test examples; ``metrics.bootstrap_accuracies``), so the interval includes
training variance and not only test resampling.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weaklift.metrics import (
    accuracy,
    accuracy_by_bucket,
    agreement,
    agreement_by_supervisor,
    bootstrap_accuracies,
    classification_summary,
    percentile_ci,
    pgr,
    pgr_from_resamples,
)
from weaklift.stages.context import StageContext
from weaklift.store import Artifact, save_arrays, save_json

log = logging.getLogger("weaklift")

EVAL_VERSION = 4  # 3: best member on weak_holdout, controls, ladders, correctness arrays;
# 4: reliability bins, agreement split by supervisor correctness

ORACLE_WARNING = (
    "the oracle student (GT labels through the student path) scores {gap:.3f} below the ceiling, "
    "beyond its 95% CI [{lo:.3f}, {hi:.3f}]: suspect the student training path, not the science"
)


@dataclass
class SeedModels:
    """Every trained model of one seed that is scored on test."""

    members: dict[str, Artifact]  # weak_labels artifacts, one per member
    ceiling: Artifact
    students: dict[str, Artifact]
    controls: dict[str, Artifact] = field(default_factory=dict)
    ladders: dict[str, list[Artifact]] = field(default_factory=dict)  # method label -> rungs


# --- one seed -------------------------------------------------------------------------------------


def evaluation_stage(ctx: StageContext, models: SeedModels) -> Artifact:
    """Accuracy/AUROC/ECE of every model on this seed's test split, and per-example correctness.

    The best weak member is the one most accurate on weak_holdout (weak-side GT), fixed before any
    test example is read; its PGR interval uses that fixed choice.
    """
    params = {
        "students": sorted(models.students),
        "controls": sorted(models.controls),
        "ladders": sorted(models.ladders),
    }
    upstream = {
        "splits": ctx.splits_key,
        **{f"weak_labels/{label}": art.key for label, art in models.members.items()},
        "ceiling": models.ceiling.key,
        **{f"student/{label}": art.key for label, art in models.students.items()},
        **{f"control/{label}": art.key for label, art in models.controls.items()},
        **{
            f"ladder/{label}/{i}": rung.key
            for label, rungs in models.ladders.items()
            for i, rung in enumerate(rungs)
        },
    }

    def compute(out: Path) -> dict:
        metrics, correct = _score_seed(ctx, models)
        save_json(out, "metrics", metrics)
        save_arrays(out, {k: v.astype(np.uint8) for k, v in correct.items()}, name="correct")
        return {}

    return ctx.store.get_or_compute("evaluation", EVAL_VERSION, params, upstream, compute)


def bucket_evaluation_stage(
    contexts: list[StageContext], seed_models: list[SeedModels], column: str, buckets: int = 4
) -> Artifact:
    """Test accuracy of the weak supervisor, every student and the ceiling per quantile bucket of
    a task column (chess: rating), pooled over the seeds' test examples, so a reader sees where a
    student passes its supervisor (or where everyone is at chance)."""
    params = {"column": column, "buckets": buckets}
    upstream = {
        f"seed{ctx.cfg.seed}/{name}": key
        for ctx, models in zip(contexts, seed_models, strict=True)
        for name, key in {
            "splits": ctx.splits_key,
            **{f"weak_labels/{label}": a.key for label, a in models.members.items()},
            "ceiling": models.ceiling.key,
            **{f"student/{label}": a.key for label, a in models.students.items()},
        }.items()
    }

    def compute(out: Path) -> dict:
        probs: dict[str, list[np.ndarray]] = {}
        values, labels = [], []
        for ctx, models in zip(contexts, seed_models, strict=True):
            seed_probs = {
                "weak": np.stack([a.arrays()["test"] for a in models.members.values()], 1).mean(1),
                **{label: a.arrays("predictions")["test"] for label, a in models.students.items()},
                "ceiling": models.ceiling.arrays("predictions")["test"],
            }
            for name, p in seed_probs.items():
                probs.setdefault(name, []).append(p)
            values.append(ctx.data.columns[column][ctx.splits["test"]])
            labels.append(ctx.labels("test"))
        rows = accuracy_by_bucket(
            np.concatenate(values),
            np.concatenate(labels),
            {name: np.concatenate(p) for name, p in probs.items()},
            buckets,
        )
        save_json(out, "buckets", {"column": column, "buckets": rows})
        return {}

    store = contexts[0].store
    return store.get_or_compute("bucket_evaluation", EVAL_VERSION, params, upstream, compute)


def _score_seed(ctx: StageContext, models: SeedModels) -> tuple[dict, dict[str, np.ndarray]]:
    labels = ctx.labels("test")
    member_arrays = [art.arrays() for art in models.members.values()]
    member_probs = np.stack([a["test"] for a in member_arrays], axis=1)  # (N, M, K)
    weak_probs = member_probs.mean(axis=1)  # the ensemble's mean; the single member when M = 1
    holdout = ctx.labels("weak_holdout")
    member_summaries = {
        label: {
            **classification_summary(member_probs[:, m], labels),
            "holdout_accuracy": accuracy(a["weak_holdout"], holdout),
        }
        for m, (label, a) in enumerate(zip(models.members, member_arrays, strict=True))
    }
    holdout_accuracy = [s["holdout_accuracy"] for s in member_summaries.values()]
    best = int(np.argmax(holdout_accuracy))  # chosen on weak-side data only
    ceiling_probs = models.ceiling.arrays("predictions")["test"]
    correct = {
        "weak": weak_probs.argmax(1) == labels,
        "ceiling": ceiling_probs.argmax(1) == labels,
        "best_member": member_probs[:, best].argmax(1) == labels,
    }

    def score(key: str, predictions: dict[str, np.ndarray]) -> dict:
        correct[key] = predictions["test"].argmax(1) == labels
        return _prediction_metrics(predictions, labels, weak_probs)

    metrics = {
        "num_test": int(len(labels)),
        "weak": classification_summary(weak_probs, labels),
        "weak_members": member_summaries,
        "ensemble": _ensemble_metrics(member_probs, labels) if len(member_arrays) > 1 else {},
        "best_member": list(models.members)[best],
        "ceiling": classification_summary(ceiling_probs, labels),
        "students": {
            label: score(f"student/{label}", art.arrays("predictions"))
            for label, art in models.students.items()
        },
        "controls": {
            label: score(f"control/{label}", art.arrays("predictions"))
            for label, art in models.controls.items()
        },
        "ladder": {
            label: [
                score(f"ladder/{label}/{i}", rung.arrays("predictions"))
                for i, rung in enumerate(rungs)
            ]
            for label, rungs in models.ladders.items()
        },
    }
    return metrics, correct


def _ensemble_metrics(member_probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy/AUROC of each way of combining the members into one label."""
    from weaklift.methods.ensemble import combine

    stacked = torch.as_tensor(member_probs)
    return {
        how: classification_summary(combine(stacked, how).numpy(), labels)
        for how in ("mean", "vote", "logpool")
    }


def _prediction_metrics(
    predictions: dict[str, np.ndarray], labels: np.ndarray, weak_probs: np.ndarray
) -> dict:
    probs = predictions["test"]
    correct = probs.argmax(1) == labels
    result = classification_summary(probs, labels)
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


# --- over seeds -----------------------------------------------------------------------------------


def summarise_seeds(
    seeds: list[int], evaluations: list[Artifact], ladder_models: list[str], samples: int
) -> dict[str, Any]:
    """Means over seeds, the spread, per-seed figures and PGR with a seeds × test-examples CI.

    PGR is computed from the seed-mean accuracies; its interval, each model's accuracy interval
    and the ceiling − weak gap's interval come from one joint two-level bootstrap over every
    model (seeded by the first seed), so all intervals are paired.
    """
    per_seed = [e.json("metrics") for e in evaluations]
    correct = [e.arrays("correct") for e in evaluations]
    resampled = bootstrap_accuracies(
        {key: [c[key].astype(bool) for c in correct] for key in correct[0]}, samples, seeds[0]
    )
    weak = _mean_summary([m["weak"] for m in per_seed])
    weak["accuracy_ci"] = list(percentile_ci(resampled["weak"]))
    ceiling = _mean_summary([m["ceiling"] for m in per_seed])
    ceiling["accuracy_ci"] = list(percentile_ci(resampled["ceiling"]))
    # the gap PGR divides by, with the same paired resamples: is there a gap to recover at all?
    ceiling["minus_weak"] = ceiling["accuracy"] - weak["accuracy"]
    gap_low, gap_high = percentile_ci(resampled["ceiling"] - resampled["weak"])
    ceiling["minus_weak_ci_low"], ceiling["minus_weak_ci_high"] = gap_low, gap_high
    weak_per_seed = [m["weak"]["accuracy"] for m in per_seed]
    ceiling_per_seed = [m["ceiling"]["accuracy"] for m in per_seed]
    best_per_seed = [m["best_member"] for m in per_seed]
    several_members = len(per_seed[0]["weak_members"]) > 1
    best_accuracy = [float(c["best_member"].mean()) for c in correct]

    def with_pgr(key: str, rows: list[dict]) -> dict:
        summary = _mean_summary(rows)
        summary["accuracy_ci"] = list(percentile_ci(resampled[key]))
        summary["pgr"] = pgr(summary["accuracy"], weak["accuracy"], ceiling["accuracy"])
        summary["pgr_ci"] = list(
            pgr_from_resamples(resampled[key], resampled["weak"], resampled["ceiling"])
        )
        summary["pgr_per_seed"] = [
            pgr(r["accuracy"], w, c)
            for r, w, c in zip(rows, weak_per_seed, ceiling_per_seed, strict=True)
        ]
        if several_members:
            summary["pgr_best_member"] = pgr(
                summary["accuracy"], float(np.mean(best_accuracy)), ceiling["accuracy"]
            )
            summary["pgr_best_member_ci"] = list(
                pgr_from_resamples(resampled[key], resampled["best_member"], resampled["ceiling"])
            )
        return summary

    def group(kind: str, field_name: str) -> dict:
        return {
            label: with_pgr(f"{kind}/{label}", [m[field_name][label] for m in per_seed])
            for label in per_seed[0][field_name]
        }

    students = group("student", "students")
    controls = group("control", "controls")
    ladder = {
        label: {
            "rungs": [
                {
                    "model": model,
                    **with_pgr(f"ladder/{label}/{i}", [m["ladder"][label][i] for m in per_seed]),
                }
                for i, model in enumerate(ladder_models)
            ],
            "direct": students[label],
        }
        for label in per_seed[0]["ladder"]
    }
    warnings = []
    if "oracle" in controls:
        lo, hi = percentile_ci(resampled["control/oracle"] - resampled["ceiling"])
        gap = ceiling["accuracy"] - controls["oracle"]["accuracy"]
        controls["oracle"]["minus_ceiling_ci"] = [lo, hi]
        if hi < 0:
            warnings.append(ORACLE_WARNING.format(gap=gap, lo=lo, hi=hi))
            log.warning(warnings[-1])
    return {
        "seeds": seeds,
        "num_test": per_seed[0]["num_test"],
        "weak": weak,
        "ceiling": ceiling,
        "students": students,
        "controls": controls,
        "weak_members": {
            label: _mean_summary([m["weak_members"][label] for m in per_seed])
            for label in per_seed[0]["weak_members"]
        },
        "ensemble": {
            how: _mean_summary([m["ensemble"][how] for m in per_seed])
            for how in per_seed[0]["ensemble"]
        },
        "best_member": Counter(best_per_seed).most_common(1)[0][0],
        "best_member_per_seed": best_per_seed,
        "ladder": ladder,
        "warnings": warnings,
        "per_seed": {str(s): m for s, m in zip(seeds, per_seed, strict=True)},
    }


def _mean_summary(rows: list[dict]) -> dict:
    """Seed means of every numeric metric, the accuracy's spread (sample SD) and per-seed values."""
    summary = {}
    for key, value in rows[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = np.array([r[key] for r in rows], dtype=float)
            finite = values[np.isfinite(values)]
            summary[key] = float(finite.mean()) if len(finite) else float("nan")
    accuracies = [r["accuracy"] for r in rows]
    summary["accuracy_sd"] = float(np.std(accuracies, ddof=1)) if len(rows) > 1 else 0.0
    summary["accuracy_per_seed"] = accuracies
    return summary
