"""What every stage may read: the store, the task data, the config, the splits, loaded backbones."""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from weaklift.config import ExperimentConfig
from weaklift.models.loading import load_backbone
from weaklift.splits import Splits
from weaklift.store import ArtifactStore
from weaklift.tasks.base import ClassificationData, PreferenceData

log = logging.getLogger("weaklift")


@dataclass
class StageContext:
    """What every stage may read: the store, the task data, the experiment config, loaded backbones."""

    store: ArtifactStore
    data: ClassificationData
    cfg: ExperimentConfig
    splits: Splits | None = None
    splits_key: str = ""
    # Task rows whose probe features are extracted in one go (sorted); None: the union of `splits`.
    # The pipeline sets it to every row any seed's splits use, so no seed re-runs a forward pass.
    feature_rows: np.ndarray | None = None
    seed_offset: int = 0  # this run seed's position after the first (shifts models' own seeds)
    _backbones: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # per-run reads of verified artifacts (features)

    @property
    def pairwise(self) -> bool:
        """Preference task: every example is a pair and models are reward models."""
        return isinstance(self.data, PreferenceData)

    def backbone(self, model: str):
        """The pristine pretrained backbone (eval mode), loaded at most once per run and only when
        a stage needs it. Read-only: feature extraction and tokenizers share it across stages."""
        if model not in self._backbones:
            log.info("loading %s", model)
            loaded = load_backbone(model)
            loaded.tokenizer.truncation_side = self.data.extra.get("truncation_side", "right")
            self._backbones[model] = loaded
        return self._backbones[model]

    def fresh_backbone(self, model: str):
        """A private copy of the pristine backbone for lora/full training, which changes weights in
        place (peft injects adapters; full finetuning updates every tensor). A copy, never the
        shared one, so a later stage (probe features, another member) reads pretrained weights."""
        pristine = self.backbone(model)
        return dataclasses.replace(pristine, model=copy.deepcopy(pristine.model))

    def probe_rows(self) -> np.ndarray:
        """Sorted task rows for feature extraction: ``feature_rows``, else every split's rows."""
        if self.feature_rows is not None:
            return np.unique(np.asarray(self.feature_rows, dtype=np.int64))
        return np.unique(
            np.concatenate([np.asarray(idx) for idx in self.splits.as_dict().values()])
        )

    def texts(self, split: str) -> list[str]:
        return [self.data.texts[i] for i in self.splits[split]]

    def texts_b(self, split: str) -> list[str] | None:
        """The second text of each pair (preference tasks), else None."""
        if not self.pairwise:
            return None
        return [self.data.texts_b[i] for i in self.splits[split]]

    def labels(self, split: str) -> np.ndarray:
        return self.data.labels[self.splits[split]]


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]
