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


GAP_EPSILON = 1e-9  # accuracies are means of 0/1 over seeds: a smaller gap is rounding, not a gap


def pgr(student: float, weak: float, ceiling: float) -> float:
    """Performance gap recovered; NaN when the ceiling does not beat the weak model (a zero gap,
    up to the rounding of seed means: 0.671 − 0.671 can come out as 1e-16)."""
    gap = ceiling - weak
    if abs(gap) < GAP_EPSILON:
        return float("nan")
    return (student - weak) / gap


def bootstrap_accuracies(
    correct: dict[str, list[np.ndarray]],
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Resampled mean accuracies (S,) per model, over seeds and test examples (a two-level bootstrap).

    ``correct[model][i]`` is model's per-example correctness on seed i's test split. Each resample
    draws as many seeds as there are, with replacement (training variance), then resamples each drawn
    seed's test examples with replacement (test variance), jointly for every model so comparisons
    stay paired, and averages the drawn seeds' accuracies. With one seed this is the ordinary
    test-example bootstrap.
    """
    names = list(correct)
    num_seeds = len(correct[names[0]])
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, num_seeds, size=(samples, num_seeds))  # (S, seeds)
    totals = {name: np.zeros(samples) for name in names}
    for slot in range(num_seeds):
        for s in range(num_seeds):
            picked = drawn[:, slot] == s
            n = len(correct[names[0]][s])
            idx = rng.integers(0, n, size=(int(picked.sum()), n))  # (picked, n)
            for name in names:
                totals[name][picked] += correct[name][s][idx].mean(axis=1)
    return {name: total / num_seeds for name, total in totals.items()}


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite values; (nan, nan) when none are finite."""
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def pgr_from_resamples(
    student: np.ndarray, weak: np.ndarray, ceiling: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of PGR over resampled accuracies; resamples with a zero gap are dropped."""
    gap = ceiling - weak
    ok = np.abs(gap) >= GAP_EPSILON
    return percentile_ci((student[ok] - weak[ok]) / gap[ok], level)


def pgr_bootstrap_ci(
    weak_correct: np.ndarray | list[np.ndarray],
    student_correct: np.ndarray | list[np.ndarray],
    ceiling_correct: np.ndarray | list[np.ndarray],
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of PGR (on accuracy) from ``bootstrap_accuracies``: one array per model for a
    single seed, or a list of arrays (one per seed) to include training variance.

    Resamples with a zero gap are dropped; returns (nan, nan) when none remain.
    """

    def per_seed(x):
        return [np.asarray(a) for a in x] if isinstance(x, list) else [np.asarray(x)]

    acc = bootstrap_accuracies(
        {
            "weak": per_seed(weak_correct),
            "student": per_seed(student_correct),
            "ceiling": per_seed(ceiling_correct),
        },
        samples,
        seed,
    )
    return pgr_from_resamples(acc["student"], acc["weak"], acc["ceiling"], level)


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


def mean_bootstrap_ci(
    values: np.ndarray, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the mean of per-example values (e.g. 0/1 correct), resampling examples."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(values), size=(samples, len(values)))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values[idx].mean(axis=1), [tail, 100 - tail])
    return float(lo), float(hi)


def pairwise_preference_summary(
    chosen: np.ndarray,
    rejected: np.ndarray,
    chosen_tokens: np.ndarray,
    rejected_tokens: np.ndarray,
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, float | list[float]]:
    """How often a language model itself prefers the chosen response: its summed log-likelihood
    (``accuracy``, with a bootstrap CI) and its per-token log-likelihood (``accuracy_per_token``)."""
    correct = chosen > rejected
    per_token = chosen / np.maximum(chosen_tokens, 1) > rejected / np.maximum(rejected_tokens, 1)
    return {
        "accuracy": float(correct.mean()),
        "accuracy_ci": list(mean_bootstrap_ci(correct, samples, seed)),
        "accuracy_per_token": float(per_token.mean()),
        "chosen_logp": float(chosen.mean()),
        "rejected_logp": float(rejected.mean()),
    }


def implicit_reward_summary(
    margins: np.ndarray, beta: float, samples: int = 1000, seed: int = 0
) -> dict[str, float | list[float]]:
    """DPO's implicit reward on held-out pairs: h = policy-vs-reference log-ratio of chosen minus
    rejected; ``reward_accuracy`` = share with h > 0 (ties count as wrong), ``reward_margin`` = mean βh."""
    correct = margins > 0
    return {
        "reward_accuracy": float(correct.mean()),
        "reward_accuracy_ci": list(mean_bootstrap_ci(correct, samples, seed)),
        "reward_margin": float(beta * margins.mean()),
    }


def accuracy_by_bucket(
    values: np.ndarray, labels: np.ndarray, probs: dict[str, np.ndarray], buckets: int = 4
) -> list[dict]:
    """Accuracy of each model within quantile buckets of ``values`` (e.g. puzzle rating on test).

    Edges are the 0, 1/b, ..., 1 quantiles of ``values`` (duplicates merged, so there may be
    fewer buckets); each bucket holds low <= value < high, the last one also its high end.
    """
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, buckets + 1)))
    which = np.searchsorted(edges[1:-1], values, side="right")  # bucket index, 0..len(edges)-2
    rows = []
    for b in range(max(len(edges) - 1, 1)):
        mask = which == b
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[min(b + 1, len(edges) - 1)]),
                "n": int(mask.sum()),
                "accuracy": {name: accuracy(p[mask], labels[mask]) for name, p in probs.items()},
            }
        )
    return rows
