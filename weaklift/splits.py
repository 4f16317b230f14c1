"""Deterministic, disjoint splits: weak_train, transfer, val, test.

The weak model trains on GT(weak_train) and labels transfer/val; the ceiling trains on GT(transfer);
students train on weak labels of transfer and select on weak labels of val; everyone is tested on test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weaklift.config import SplitConfig
from weaklift.errors import WeakliftError

SPLIT_NAMES = ("weak_train", "transfer", "val", "test")


@dataclass(frozen=True)
class Splits:
    """Indices into the task's example pool, one array per split."""

    weak_train: np.ndarray
    transfer: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: self[name] for name in SPLIT_NAMES}


def make_splits(labels: np.ndarray, cfg: SplitConfig, seed: int) -> Splits:
    """Shuffle with ``seed`` and cut consecutive blocks; with ``balance`` draw equal counts per class."""
    sizes = {name: getattr(cfg, name) for name in SPLIT_NAMES}
    needed = sum(sizes.values())
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if cfg.balance:
        order = _balanced_order(labels, sizes, rng)
    else:
        if needed > len(labels):
            raise WeakliftError(
                f"split sizes need {needed} examples but the task has {len(labels)}",
                "lower split.weak_train/transfer/val/test",
            )
        order = rng.permutation(len(labels))
    cuts = np.cumsum([0] + [sizes[n] for n in SPLIT_NAMES])
    parts = {n: np.sort(order[cuts[i] : cuts[i + 1]]) for i, n in enumerate(SPLIT_NAMES)}
    return Splits(**parts)


def _balanced_order(
    labels: np.ndarray, sizes: dict[str, int], rng: np.random.Generator
) -> np.ndarray:
    """An ordering whose every split block holds equal counts of each class."""
    classes = np.unique(labels)
    per_class_pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    order: list[int] = []
    for name in SPLIT_NAMES:
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
