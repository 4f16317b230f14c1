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
    for name in SPLIT_NAMES:
        assert len(splits[name]) == getattr(cfg, name)
        if balance:
            counts = np.bincount(labels[splits[name]], minlength=2)
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
    assert [len(splits[n]) for n in SPLIT_NAMES] == [10, 10, 6, 10]
    used = np.concatenate([splits[n] for n in SPLIT_NAMES])
    partial = [g for g in where if np.sum(groups[used] == g) < 4]
    assert len(partial) == 4  # one cut group per split; its remaining rows are in no split
