"""Deterministic, disjoint splits: weak_train, weak_holdout, transfer, val, test.

The weak model trains on GT(weak_train) and checks itself on GT(weak_holdout), a slice carved from
the configured weak_train; it labels transfer/val; the ceiling trains on GT(transfer); students train
on weak labels of transfer (and, with train.select=weak_agreement, select on weak labels of val);
everyone is tested on test. No GT outside weak_train/weak_holdout reaches a weak model or a student.

A task may give each example a group (``ClassificationData.groups``: an entity, an author, a
source document); then every group lies in one split, so nothing learnt about a group on one split
helps on another (weak_holdout, too, takes whole groups).

Easy-to-hard (``split.by``): weak_train takes the examples with the lowest value of a task column
(chess: ``rating``), test optionally the highest (``split.hard_test``), the rest is shuffled;
groups stay whole there too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from weaklift.config import SplitConfig
from weaklift.errors import WeakliftError

SPLIT_NAMES = ("weak_train", "weak_holdout", "transfer", "val", "test")
BLOCKS = ("weak_train", "transfer", "val", "test")  # configured sizes; weak_holdout is carved


@dataclass(frozen=True)
class Splits:
    """Indices into the task's example pool, one array per split."""

    weak_train: np.ndarray
    weak_holdout: np.ndarray
    transfer: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: self[name] for name in SPLIT_NAMES}

    def all_rows(self) -> np.ndarray:
        """Every task row some split uses, sorted."""
        return np.unique(np.concatenate([self[name] for name in SPLIT_NAMES]))


def make_splits(
    labels: np.ndarray,
    cfg: SplitConfig,
    seed: int,
    groups: np.ndarray | None = None,
    columns: Mapping[str, np.ndarray] | None = None,
) -> Splits:
    """Shuffle with ``seed`` and cut consecutive blocks; with ``balance`` draw equal counts per class;
    with ``groups`` keep every group within one split (``grouped_order``); with ``split.by`` order
    by the task column of that name (``columns``) first (``difficulty_blocks``).

    weak_holdout is a seeded random slice of the weak_train block, so it never depends on val/test.
    """
    sizes = {name: getattr(cfg, name) for name in BLOCKS}
    needed = sum(sizes.values())
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if cfg.by is not None:
        parts = difficulty_blocks(len(labels), cfg, sizes, rng, groups, columns or {})
    else:
        if groups is not None:
            order = grouped_order(labels, np.asarray(groups), sizes, cfg.balance, rng)
        elif cfg.balance:
            order = _balanced_order(labels, sizes, rng)
        else:
            if needed > len(labels):
                raise WeakliftError(
                    f"split sizes need {needed} examples but the task has {len(labels)}",
                    "lower split.weak_train/transfer/val/test",
                )
            order = rng.permutation(len(labels))
        cuts = np.cumsum([0] + [sizes[n] for n in BLOCKS])
        parts = {n: order[cuts[i] : cuts[i + 1]] for i, n in enumerate(BLOCKS)}
    parts["weak_holdout"], parts["weak_train"] = _carve_holdout(
        parts["weak_train"],
        cfg.holdout_count(),
        None if groups is None else np.asarray(groups),
        rng,
    )
    return Splits(**{n: np.sort(idx) for n, idx in parts.items()})


def _carve_holdout(
    weak_block: np.ndarray, count: int, groups: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(holdout, rest) of the weak_train block: ``count`` random rows, or with groups whole random
    groups until at least ``count`` rows (so no group spans both)."""
    if groups is None:
        shuffled = rng.permutation(weak_block)
        return shuffled[:count], shuffled[count:]
    block_groups = groups[weak_block].astype(str)
    taken: list[str] = []
    size = 0
    for g in rng.permutation(np.unique(block_groups)):
        if size >= count:
            break
        taken.append(g)
        size += int((block_groups == g).sum())
    held = np.isin(block_groups, taken)
    if held.all():
        raise WeakliftError(
            f"split.weak_holdout: whole groups for {count} held-out rows leave none of weak_train",
            "lower split.weak_holdout or raise split.weak_train",
        )
    return weak_block[held], weak_block[~held]


def _balanced_order(
    labels: np.ndarray, sizes: dict[str, int], rng: np.random.Generator
) -> np.ndarray:
    """An ordering whose every split block holds equal counts of each class."""
    classes = np.unique(labels)
    per_class_pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    order: list[int] = []
    for name in BLOCKS:
        size = sizes[name]
        if size % len(classes):
            raise WeakliftError(
                f"split.{name}={size} cannot be balanced over {len(classes)} classes",
                f"use a multiple of {len(classes)} or split.balance=false",
            )
        for c in classes:
            take = size // len(classes)
            pool = per_class_pools[c]
            if len(pool) < take:
                raise WeakliftError(
                    f"too few examples of class {c} for balanced splits (split.{name} needs {take} more, "
                    f"{len(pool)} left)",
                    "lower the split sizes or set split.balance=false",
                )
            order.extend(pool[:take])
            del pool[:take]
    return np.asarray(order, dtype=np.int64)


def grouped_order(
    labels: np.ndarray,
    groups: np.ndarray,
    sizes: dict[str, int],
    balance: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """An ordering whose split blocks hold whole groups and have exactly the requested sizes.

    Groups are shuffled; each split in turn takes every group that still fits (first fit; with
    ``balance`` a group fits when each of its class counts fits that class's remaining quota). When
    no whole group fits the remainder, the split takes part of the next unused group and the rest
    of that group is left out of every split, so a group never spans two splits.
    """
    classes = np.unique(labels)
    _, group_ids = np.unique(groups.astype(str), return_inverse=True)
    by_group = np.argsort(group_ids, kind="stable")
    members = np.split(by_group, np.cumsum(np.bincount(group_ids))[:-1])  # indices per group
    class_of = np.searchsorted(classes, labels)
    counts = np.zeros((len(members), len(classes)), dtype=np.int64)  # (G, K)
    np.add.at(counts, (group_ids, class_of), 1)
    if not balance:
        counts = counts.sum(axis=1, keepdims=True)  # (G, 1): only the total matters
    unused = list(rng.permutation(len(members)))
    order: list[int] = []
    for name in BLOCKS:
        need = _split_quota(name, sizes[name], len(classes), balance)  # (K,) or (1,)
        kept = []
        for g in unused:
            if need.any() and np.all(counts[g] <= need):
                order.extend(rng.permutation(members[g]).tolist())
                need = need - counts[g]
            else:
                kept.append(g)
        unused = kept
        while need.any() and unused:  # top up from part of a group; the rest is left out
            rows = rng.permutation(members[unused.pop(0)])
            for row in rows:
                slot = class_of[row] if balance else 0
                if need[slot] > 0:
                    order.append(int(row))
                    need[slot] -= 1
        if need.any():
            raise WeakliftError(
                f"split sizes need {sum(sizes.values())} examples in whole groups but the task has "
                f"{len(labels)} in {len(members)} groups (split.{name} is short)",
                "lower split.weak_train/transfer/val/test",
            )
    return np.asarray(order, dtype=np.int64)


def _split_quota(name: str, size: int, num_classes: int, balance: bool) -> np.ndarray:
    """Examples a split still needs: per class with ``balance``, else one total."""
    if not balance:
        return np.array([size], dtype=np.int64)
    if size % num_classes:
        raise WeakliftError(
            f"split.{name}={size} cannot be balanced over {num_classes} classes",
            f"use a multiple of {num_classes} or split.balance=false",
        )
    return np.full(num_classes, size // num_classes, dtype=np.int64)


def difficulty_blocks(
    n: int,
    cfg: SplitConfig,
    sizes: dict[str, int],
    rng: np.random.Generator,
    groups: np.ndarray | None,
    columns: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Easy-to-hard blocks of whole groups (an example is its own group when the task has none).

    weak_train = the lowest-valued groups (a group's value is its mean), test = the highest with
    ``hard_test``; ties are ordered by the seeded shuffle, and everything else is shuffled. Sizes
    are exact: a size that would cut a group in two is an error (chess: use even sizes).
    """
    if cfg.by not in columns:
        raise WeakliftError(
            f"split.by={cfg.by!r} is not a numeric column of this task "
            f"(it has: {', '.join(sorted(columns)) or 'none'})",
            "choose one of those columns, or remove split.by",
        )
    groups = np.arange(n) if groups is None else np.asarray(groups).astype(str)
    _, unit_of = np.unique(groups, return_inverse=True)  # example -> unit (group) id
    unit_size = np.bincount(unit_of)
    shuffled = rng.permutation(len(unit_size))
    rank = np.empty_like(shuffled)
    rank[shuffled] = np.arange(len(shuffled))
    values = np.asarray(columns[cfg.by], dtype=np.float64)
    unit_value = np.bincount(unit_of, weights=values) / unit_size
    easiest_first = np.lexsort((rank, unit_value))  # by value, ties in the seeded order
    units: dict[str, np.ndarray] = {}
    units["weak_train"], remaining = _take(easiest_first, unit_size, sizes, "weak_train")
    if cfg.hard_test:
        units["test"], hardest_rest = _take(remaining[::-1], unit_size, sizes, "test")
        remaining = hardest_rest[::-1]
    remaining = remaining[np.argsort(rank[remaining], kind="stable")]  # shuffle the rest
    for name in BLOCKS:
        if name not in units:
            units[name], remaining = _take(remaining, unit_size, sizes, name)
    return {name: np.flatnonzero(np.isin(unit_of, units[name])) for name in BLOCKS}


def _take(
    order: np.ndarray, unit_size: np.ndarray, sizes: dict[str, int], name: str
) -> tuple[np.ndarray, np.ndarray]:
    """The leading units of ``order`` that hold exactly ``sizes[name]`` examples, and the rest."""
    size = sizes[name]
    filled = np.cumsum(unit_size[order])
    if not len(filled) or filled[-1] < size:
        raise WeakliftError(
            f"split sizes need {sum(sizes.values())} examples but the task has "
            f"{int(unit_size.sum())} (split.{name} ran out)",
            "lower split.weak_train/transfer/val/test",
        )
    count = int(np.searchsorted(filled, size)) + 1
    if filled[count - 1] != size:
        raise WeakliftError(
            f"split.{name}={size} would cut a group of examples in two",
            f"use a size that whole groups fill (chess: an even number), e.g. {int(filled[count - 1])}",
        )
    return order[:count], order[count:]
