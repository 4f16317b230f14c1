"""What every stage may read: the store, the task data, the config, the splits, loaded backbones."""

from __future__ import annotations

import ctypes
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weaklift.config import ExperimentConfig, ModelConfig
from weaklift.models.device import dtype_name, resolve_dtype
from weaklift.models.loading import LoadedBackbone, load_backbone, load_tokenizer
from weaklift.splits import Splits
from weaklift.store import ArtifactStore
from weaklift.tasks.base import ClassificationData, PreferenceData

log = logging.getLogger("weaklift")


def _free_memory() -> None:
    """Collect the stage's model and hand the freed heap back to the OS: glibc keeps freed
    blocks under 32 MB (a 0.5B model's weight matrices) for reuse, so without the trim a full
    stage's gigabytes stay in the process for the rest of the run (measured: 3.5 GB after a
    0.47B FSDP stage, 0.5 GB with it). Elsewhere than glibc the trim is skipped."""
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


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
    _tokenizers: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # per-run reads of verified artifacts (features)

    @property
    def pairwise(self) -> bool:
        """Preference task: every example is a pair and models are reward models."""
        return isinstance(self.data, PreferenceData)

    def backbone(self, model_cfg: ModelConfig) -> LoadedBackbone:
        """The pristine pretrained backbone in the config's compute dtype (eval mode), loaded at
        most once per run and only when a stage needs it. Shared: feature extraction, tokenizers
        and lora stages (whose adapters come out again after the stage) all read this one copy."""
        key = (model_cfg.model, dtype_name(resolve_dtype(model_cfg.dtype)))
        if key not in self._backbones:
            log.info("loading %s (%s)", *key)
            self._backbones[key] = self._load(model_cfg.model, model_cfg.dtype)
        return self._backbones[key]

    @contextmanager
    def trainable_backbone(self, model_cfg: ModelConfig) -> Iterator[LoadedBackbone]:
        """The backbone a lora or full stage trains, for the length of the stage.

        lora: the shared one (``backbone``); the stage injects adapters and must take them out
        (``release_backbone``). full: a private load from disk with float32 master weights (the
        forward still runs in the compute dtype, under autocast), dropped when the stage ends,
        so its trained weights never outlive it and the shared backbone stays pristine.
        """
        if model_cfg.mode != "full":
            yield self.backbone(model_cfg)
            return
        log.info("loading %s (float32 master weights for full finetuning)", model_cfg.model)
        loaded = self._load(model_cfg.model, "float32")
        try:
            yield loaded
        finally:
            del loaded
            _free_memory()

    def tokenizer(self, model: str) -> Any:
        """The model's tokenizer (as its backbone has it), without loading any weights."""
        if model not in self._tokenizers:
            tokenizer = load_tokenizer(model)
            tokenizer.truncation_side = self._truncation_side()
            self._tokenizers[model] = tokenizer
        return self._tokenizers[model]

    def _load(self, model: str, dtype: str) -> LoadedBackbone:
        loaded = load_backbone(model, dtype)
        loaded.tokenizer.truncation_side = self._truncation_side()
        return loaded

    def _truncation_side(self) -> str:
        return self.data.extra.get("truncation_side", "right")

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
