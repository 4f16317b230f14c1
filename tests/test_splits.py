"""Splits are deterministic, disjoint, sized as asked, optionally balanced; bad sizes fail clearly."""

from __future__ import annotations

import numpy as np
import pytest

from weaklift.config import SplitConfig
from weaklift.errors import WeakliftError
from weaklift.splits import SPLIT_NAMES, make_splits

LABELS = np.array([0] * 70 + [1] * 30)
SIZES = SplitConfig(weak_train=20, transfer=30, val=10, test=20)


def test_splits_are_deterministic_and_disjoint():
    a, b = make_splits(LABELS, SIZES, seed=0), make_splits(LABELS, SIZES, seed=0)
    for name in SPLIT_NAMES:
        assert np.array_equal(a[name], b[name])
        assert len(a[name]) == getattr(SIZES, name)
    union = np.concatenate([a[n] for n in SPLIT_NAMES])
    assert len(np.unique(union)) == len(union) == 80


def test_seed_changes_splits():
    a, c = make_splits(LABELS, SIZES, seed=0), make_splits(LABELS, SIZES, seed=1)
    assert not np.array_equal(a.transfer, c.transfer)


def test_balanced_splits_have_equal_class_counts():
    balanced = SplitConfig(weak_train=20, transfer=20, val=10, test=10, balance=True)
    splits = make_splits(LABELS, balanced, 0)
    for name in SPLIT_NAMES:
        counts = np.bincount(LABELS[splits[name]], minlength=2)
        assert counts[0] == counts[1] == getattr(balanced, name) // 2


def test_too_few_examples_is_a_clear_error():
    with pytest.raises(WeakliftError, match="split sizes need 80 examples but the task has 50"):
        make_splits(LABELS[:50], SIZES, seed=0)
    with pytest.raises(WeakliftError, match="class 1"):
        make_splits(
            LABELS, SplitConfig(weak_train=40, transfer=20, val=10, test=10, balance=True), 0
        )
