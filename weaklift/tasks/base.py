"""What a loaded classification task is: texts, integer labels, and how they were produced."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from weaklift.errors import WeakliftError
from weaklift.store import stable_hash


@dataclass(frozen=True)
class ClassificationData:
    """A pool of labelled texts; splits are drawn from it by ``weaklift.splits``.

    ``label_names[i]`` is the original value that label id ``i`` stands for (the recorded mapping).
    ``groups`` (optional, (N,)) marks examples that must share a split, e.g. every statement about
    one entity; ``builder`` names the code that built the pool and its version (set by
    ``load_task``), so editing a builder invalidates every split and model downstream.
    ``columns`` holds per-example numbers a split or a report may use (chess: ``rating``);
    ``difficulty`` names the column results are bucketed by when ``split.by`` is not set.
    """

    name: str
    texts: list[str]
    labels: np.ndarray  # (N,) int64 in [0, num_classes)
    label_names: list[str]
    source: str = ""
    extra: dict = field(default_factory=dict)
    groups: np.ndarray | None = None  # (N,) group ids (str or int); None: every example alone
    builder: str = ""  # "<task>/<version>"
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) numbers
    difficulty: str | None = None

    def __post_init__(self) -> None:
        if len(self.texts) == 0:
            raise WeakliftError(
                f"task {self.name!r} loaded no examples", "check task.path and its columns"
            )
        if len(self.texts) != len(self.labels):
            raise WeakliftError(
                f"task {self.name!r}: {len(self.texts)} texts but {len(self.labels)} labels"
            )
        labels = np.asarray(self.labels)
        if labels.min() < 0 or labels.max() >= len(self.label_names):
            bad = int(labels[(labels < 0) | (labels >= len(self.label_names))][0])
            raise WeakliftError(
                f"task {self.name!r}: label {bad} out of range [0, {len(self.label_names)})",
                "use labels 0..K-1 or string labels (mapped to ids automatically)",
            )
        if self.groups is not None and len(self.groups) != len(self.texts):
            raise WeakliftError(
                f"task {self.name!r}: {len(self.texts)} texts but {len(self.groups)} group ids"
            )
        for i, text in enumerate(self.texts):
            if not isinstance(text, str) or not text:
                raise WeakliftError(
                    f"task {self.name!r}: example {i} has an empty or non-text input"
                )
        for column, values in self.columns.items():
            if np.shape(values) != (len(self.texts),):
                raise WeakliftError(
                    f"task {self.name!r}: column {column!r} has shape {np.shape(values)}, "
                    f"expected ({len(self.texts)},)"
                )
        if self.difficulty is not None and self.difficulty not in self.columns:
            raise WeakliftError(
                f"task {self.name!r}: difficulty column {self.difficulty!r} missing"
            )

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def fingerprint(self) -> str:
        """Hash of the content and its builder, so a changed data file or builder never reuses
        stale splits or features."""
        content = {"texts": self.texts, "labels": self.labels.tolist(), "names": self.label_names}
        if self.groups is not None:
            content["groups"] = [str(g) for g in self.groups]
        if self.columns:  # only tasks with columns hash them, so other tasks keep their keys
            content["columns"] = {
                k: np.asarray(v).tolist() for k, v in sorted(self.columns.items())
            }
        return stable_hash({**content, "builder": self.builder})


@dataclass(frozen=True)
class PreferenceData(ClassificationData):
    """Pairs (texts[i], texts_b[i]); label 1 means the first text is the preferred one.

    A reward model scores each text; its two "class logits" are (r(b), r(a)), so every
    classification method becomes its Bradley–Terry form unchanged: P(a ≻ b) = σ(r(a) − r(b)).
    """

    texts_b: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.texts_b) != len(self.texts):
            raise WeakliftError(
                f"task {self.name!r}: {len(self.texts)} first texts but {len(self.texts_b)} second"
            )

    def fingerprint(self) -> str:
        return stable_hash({"pairs": super().fingerprint(), "texts_b": self.texts_b})
