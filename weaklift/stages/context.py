"""What every stage may read: the store, the task data, the config, the splits, loaded backbones."""

from __future__ import annotations

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
    _backbones: dict = field(default_factory=dict)

    @property
    def pairwise(self) -> bool:
        """Preference task: every example is a pair and models are reward models."""
        return isinstance(self.data, PreferenceData)

    def backbone(self, model: str):
        """Load each backbone at most once per run, and only when a stage actually needs it."""
        if model not in self._backbones:
            log.info("loading %s", model)
            loaded = load_backbone(model)
            loaded.tokenizer.truncation_side = self.data.extra.get("truncation_side", "right")
            self._backbones[model] = loaded
        return self._backbones[model]

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
