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
    expected = {"weak_train": 16, "weak_holdout": 4, "transfer": 30, "val": 10, "test": 20}
    for name in SPLIT_NAMES:
        assert np.array_equal(a[name], b[name])
        assert len(a[name]) == expected[name]
    union = np.concatenate([a[n] for n in SPLIT_NAMES])
    assert len(np.unique(union)) == len(union) == 80
    assert np.array_equal(a.all_rows(), np.sort(union))


def test_weak_holdout_is_carved_from_weak_train_only():
    """The holdout (fraction or count) comes out of the weak_train block; the other splits are
    the ones a run without it would get."""
    by_count = SplitConfig(weak_train=20, weak_holdout=5, transfer=30, val=10, test=20)
    a, b = make_splits(LABELS, SIZES, seed=3), make_splits(LABELS, by_count, seed=3)
    assert len(b.weak_holdout) == 5 and len(b.weak_train) == 15
    weak_side = np.union1d(a.weak_train, a.weak_holdout)
    assert np.array_equal(weak_side, np.union1d(b.weak_train, b.weak_holdout))
    for name in ("transfer", "val", "test"):
        assert np.array_equal(a[name], b[name])


@pytest.mark.parametrize("holdout", [1.0, 20, 25])
def test_a_holdout_that_leaves_nothing_to_train_is_rejected(holdout):
    with pytest.raises(ValueError, match="weak_holdout"):
        SplitConfig(weak_train=20, weak_holdout=holdout)


def test_seed_changes_splits():
    a, c = make_splits(LABELS, SIZES, seed=0), make_splits(LABELS, SIZES, seed=1)
    assert not np.array_equal(a.transfer, c.transfer)


def test_balanced_splits_have_equal_class_counts():
    balanced = SplitConfig(weak_train=20, transfer=20, val=10, test=10, balance=True)
    splits = make_splits(LABELS, balanced, 0)
    for name in ("transfer", "val", "test"):
        counts = np.bincount(LABELS[splits[name]], minlength=2)
        assert counts[0] == counts[1] == getattr(balanced, name) // 2


def test_too_few_examples_is_a_clear_error():
    with pytest.raises(WeakliftError, match="split sizes need 80 examples but the task has 50"):
        make_splits(LABELS[:50], SIZES, seed=0)
    with pytest.raises(WeakliftError, match="class 1"):
        make_splits(
            LABELS, SplitConfig(weak_train=40, transfer=20, val=10, test=10, balance=True), 0
        )


def _group_split(groups: np.ndarray, splits) -> dict[str, str]:
    """Each group's split; fails if a group lies in two splits."""
    where: dict[str, str] = {}
    for name in SPLIT_NAMES:
        for g in groups[splits[name]]:
            assert where.setdefault(str(g), name) == name, f"group {g} in two splits"
    return where


@pytest.mark.parametrize("balance", [False, True])
def test_grouped_splits_keep_groups_whole_and_sizes_exact(balance):
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 6, size=60)  # 60 groups of 1..5 examples
    groups = np.repeat([f"g{i}" for i in range(60)], sizes)
    labels = rng.integers(0, 2, size=len(groups))
    cfg = SplitConfig(weak_train=30, transfer=30, val=10, test=20, balance=balance)
    splits = make_splits(labels, cfg, seed=0, groups=groups)
    _group_split(groups, splits)
    union = np.concatenate([splits[n] for n in SPLIT_NAMES])
    assert len(np.unique(union)) == len(union)
    weak_side = np.union1d(splits.weak_train, splits.weak_holdout)  # holdout: whole groups
    for name, rows in (("weak_train", weak_side), *((n, splits[n]) for n in SPLIT_NAMES[2:])):
        assert len(rows) == getattr(cfg, name)
        if balance:
            counts = np.bincount(labels[rows], minlength=2)
            assert counts[0] == counts[1]
    again = make_splits(labels, cfg, seed=0, groups=groups)
    assert all(np.array_equal(again[n], splits[n]) for n in SPLIT_NAMES)
    other = make_splits(labels, cfg, seed=1, groups=groups)
    assert not np.array_equal(other.transfer, splits.transfer)


def test_ungrouped_split_would_cut_groups():
    """Control: without groups the same pool puts some group into two splits."""
    groups = np.repeat([f"g{i}" for i in range(25)], 4)
    splits = make_splits(LABELS, SIZES, seed=0)
    with pytest.raises(AssertionError, match="in two splits"):
        _group_split(groups, splits)
    _group_split(groups, make_splits(LABELS, SIZES, seed=0, groups=groups))


def test_grouped_split_too_few_groups_is_a_clear_error():
    groups = np.repeat([f"g{i}" for i in range(10)], 5)  # 50 examples
    with pytest.raises(WeakliftError, match="split sizes need 80 examples in whole groups"):
        make_splits(LABELS[:50], SIZES, seed=0, groups=groups)


def test_sizes_no_whole_groups_can_fill_take_part_of_a_group_and_leave_its_rest_out():
    groups = np.repeat([f"g{i}" for i in range(25)], 4)  # only groups of 4
    cfg = SplitConfig(weak_train=10, transfer=10, val=6, test=10)
    splits = make_splits(LABELS, cfg, seed=0, groups=groups)
    where = _group_split(groups, splits)
    weak_side = len(splits.weak_train) + len(splits.weak_holdout)
    assert [weak_side, *(len(splits[n]) for n in SPLIT_NAMES[2:])] == [10, 10, 6, 10]
    used = np.concatenate([splits[n] for n in SPLIT_NAMES])
    partial = [g for g in where if np.sum(groups[used] == g) < 4]
    assert len(partial) == 4  # one cut group per block; its remaining rows are in no split


def test_weak_holdout_takes_whole_groups():
    labels = np.arange(160) % 2
    groups = np.array([f"g{i // 3}" for i in range(160)])
    splits = make_splits(
        labels, SplitConfig(weak_train=40, transfer=40, val=20, test=40), 0, groups
    )
    assert not set(groups[splits.weak_train]) & set(groups[splits.weak_holdout])
    assert 8 <= len(splits.weak_holdout) <= 10  # 20% of 40, rounded up to whole groups
