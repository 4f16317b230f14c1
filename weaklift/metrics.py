"""Evaluation metrics. PGR is defined here and only here.

PGR = (student − weak) / (ceiling − weak): the fraction of the gap between the weak supervisor and the
strong ceiling that the weakly supervised student recovers (Burns et al. 2023, eq. 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Binary: AUROC of P(class 1). Multiclass: one-vs-rest macro AUROC. NaN if a class is missing."""
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    if len(present) < probs.shape[1]:
        return float("nan")
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def agreement(student_probs: np.ndarray, supervisor_probs: np.ndarray) -> float:
    """Fraction of examples where the student's argmax equals its supervisor's."""
    return float(np.mean(np.argmax(student_probs, axis=1) == np.argmax(supervisor_probs, axis=1)))


def pgr(student: float, weak: float, ceiling: float) -> float:
    """Performance gap recovered; NaN when the ceiling does not beat the weak model (gap is zero)."""
    gap = ceiling - weak
    if gap == 0:
        return float("nan")
    return (student - weak) / gap


def pgr_bootstrap_ci(
    weak_correct: np.ndarray,
    student_correct: np.ndarray,
    ceiling_correct: np.ndarray,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of PGR (on accuracy), resampling test examples jointly for all three models.

    Resamples with a zero gap are dropped; returns (nan, nan) when none remain.
    """
    n = len(weak_correct)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(samples, n))  # (S, n)
    weak = weak_correct[idx].mean(axis=1)
    student = student_correct[idx].mean(axis=1)
    ceiling = ceiling_correct[idx].mean(axis=1)
    gap = ceiling - weak
    ok = gap != 0
    if not ok.any():
        return float("nan"), float("nan")
    values = (student[ok] - weak[ok]) / gap[ok]
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-class confidence over equal-width bins."""
    confidence = probs.max(axis=1)
    correct = np.argmax(probs, axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, list]:
    """A reliability diagram: per equal-width bin of top-class confidence, the number of examples,
    their mean confidence and their accuracy (None for an empty bin). The same bins as the ECE."""
    confidence = probs.max(axis=1)
    correct = np.argmax(probs, axis=1) == labels
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    result: dict[str, list] = {"count": [], "confidence": [], "accuracy": []}
    for b in range(bins):
        mask = which == b
        result["count"].append(int(mask.sum()))
        result["confidence"].append(float(confidence[mask].mean()) if mask.any() else None)
        result["accuracy"].append(float(correct[mask].mean()) if mask.any() else None)
    return result


def agreement_by_supervisor(
    student_probs: np.ndarray, supervisor_probs: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Student–supervisor agreement on the examples the supervisor gets right, and on those it gets
    wrong (Burns et al. 2023, fig. 8): imitation shows as high agreement on the supervisor's errors."""
    agree = np.argmax(student_probs, axis=1) == np.argmax(supervisor_probs, axis=1)
    right = np.argmax(supervisor_probs, axis=1) == labels
    return {
        "agreement_weak_right": float(agree[right].mean()) if right.any() else float("nan"),
        "agreement_weak_wrong": float(agree[~right].mean()) if (~right).any() else float("nan"),
    }


def classification_summary(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    return {
        "accuracy": accuracy(probs, labels),
        "auroc": auroc(probs, labels),
        "ece": expected_calibration_error(probs, labels),
        "reliability": reliability_bins(probs, labels),
    }
