"""PGR and its bootstrap CI on hand-made numbers; the other metrics on tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from weaklift.metrics import (
    accuracy,
    agreement,
    auroc,
    bootstrap_accuracies,
    expected_calibration_error,
    pgr,
    pgr_bootstrap_ci,
)


def test_pgr_by_hand():
    assert pgr(student=0.75, weak=0.6, ceiling=0.9) == pytest.approx(0.5)
    assert pgr(student=0.9, weak=0.6, ceiling=0.9) == pytest.approx(1.0)
    assert pgr(student=0.5, weak=0.6, ceiling=0.9) == pytest.approx(-1 / 3)
    assert math.isnan(pgr(student=0.7, weak=0.8, ceiling=0.8))
    # seed means of equal accuracies can differ by rounding: still no gap, not PGR 1e13
    weak, ceiling = np.mean([0.5, 0.507, 0.542]), np.mean([0.542, 0.5, 0.507])
    assert ceiling - weak != 0  # 1.1e-16
    assert math.isnan(pgr(student=0.7, weak=weak, ceiling=ceiling))


def test_pgr_ci_is_a_point_when_every_resample_is_identical():
    # Every test example is "weak wrong, student right, ceiling right" or "all right": PGR is 1 always.
    weak = np.array([0, 0, 1, 1], dtype=bool)
    student = ceiling = np.array([1, 1, 1, 1], dtype=bool)
    lo, hi = pgr_bootstrap_ci(weak, student, ceiling, samples=200, seed=0)
    assert (lo, hi) == (1.0, 1.0)


def test_pgr_ci_covers_the_point_estimate_and_matches_manual_bootstrap():
    rng = np.random.default_rng(1)
    n = 400
    ceiling = rng.random(n) < 0.9
    weak = rng.random(n) < 0.6
    student = np.where(rng.random(n) < 0.5, ceiling, weak)
    point = pgr(student.mean(), weak.mean(), ceiling.mean())
    lo, hi = pgr_bootstrap_ci(weak, student, ceiling, samples=500, seed=3)
    assert lo < point < hi
    # the same resampling done by hand
    idx = np.random.default_rng(3).integers(0, n, size=(500, n))
    values = [
        (student[i].mean() - weak[i].mean()) / (ceiling[i].mean() - weak[i].mean()) for i in idx
    ]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))


def test_seed_bootstrap_includes_training_variance_by_hand():
    """Two seeds whose students differ completely: seed A recovers the whole gap, seed B none.
    Within a seed every test example looks alike, so test resampling alone sees no variance;
    resampling seeds gives {A, A}: 1, {A, B}: 0.5, {B, B}: 0 with chances 1/4, 1/2, 1/4."""
    n = 50
    wrong, right = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    weak, ceiling = [wrong, wrong], [right, right]
    student = [right, wrong]  # seed A: PGR 1; seed B: PGR 0
    assert pgr_bootstrap_ci(weak[0], student[0], ceiling[0], 200, 0) == (1.0, 1.0)
    acc = bootstrap_accuracies({"s": student, "w": weak, "c": ceiling}, samples=4000, seed=1)
    values, counts = np.unique(acc["s"], return_counts=True)
    assert values.tolist() == [0.0, 0.5, 1.0]
    assert counts / 4000 == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert pgr_bootstrap_ci(weak, student, ceiling, samples=4000, seed=1) == (0.0, 1.0)


def test_seed_bootstrap_matches_a_loop_written_by_hand():
    rng = np.random.default_rng(5)
    correct = {m: [rng.random(30) < p for _ in range(3)] for m, p in (("a", 0.5), ("b", 0.8))}
    fast = bootstrap_accuracies(correct, samples=300, seed=9)
    # the same draws, one resample at a time
    draw = np.random.default_rng(9)
    seeds = draw.integers(0, 3, size=(300, 3))
    slow = {m: np.zeros(300) for m in correct}
    for slot in range(3):
        for s in range(3):
            picked = np.flatnonzero(seeds[:, slot] == s)
            idx = draw.integers(0, 30, size=(len(picked), 30))
            for row, b in enumerate(picked):
                for m in correct:
                    slow[m][b] += correct[m][s][idx[row]].mean() / 3
    for m in correct:
        assert np.allclose(fast[m], slow[m])


def test_accuracy_auroc_agreement():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 1])
    assert accuracy(probs, labels) == 0.5
    # positives score .6 and .4; negatives .1 and .7: pairs (pos>neg) = (.6>.1), (.4>.1) → 2 of 4
    assert auroc(probs, labels) == pytest.approx(0.5)
    assert agreement(probs, np.array([[1, 0], [0, 1], [1, 0], [1, 0]])) == 0.75
    assert math.isnan(auroc(probs, np.zeros(4, dtype=int)))


def test_ece_by_hand():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.65, 0.35], [0.65, 0.35]])
    labels = np.array([0, 1, 0, 0])
    # bin .9–1: conf .95, acc .5 → .45·½ ; bin .6–.7: conf .65, acc 1 → .35·½
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
