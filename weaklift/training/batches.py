"""Turn example indices into model inputs: cached features, or tokens padded per batch."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from weaklift.models.features import collate


class Batcher(Protocol):
    def __len__(self) -> int: ...

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]: ...


class FeatureBatcher:
    """Probe mode: rows of a precomputed (N, H) feature matrix (and the second texts' for pairs)."""

    def __init__(self, features: np.ndarray, features_b: np.ndarray | None = None):
        self.features = torch.as_tensor(features, dtype=torch.float32)
        self.features_b = (
            None if features_b is None else torch.as_tensor(features_b, dtype=torch.float32)
        )

    def __len__(self) -> int:
        return len(self.features)

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(rows)
        out = {"features": self.features[index].to(device)}
        if self.features_b is not None:
            out["features_b"] = self.features_b[index].to(device)
        return out


class TokenBatcher:
    """LoRA/full mode: texts tokenised once, right-padded to each batch's own longest row."""

    def __init__(
        self, tokenizer, texts: list[str], max_length: int, texts_b: list[str] | None = None
    ):
        encoded = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)
        self.ids = [list(ids) for ids in encoded["input_ids"]]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.second = None if texts_b is None else TokenBatcher(tokenizer, texts_b, max_length)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = collate([self.ids[int(r)] for r in rows], self.pad_id)
        out = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
        if self.second is not None:
            second = self.second.batch(rows, device)
            out.update(input_ids_b=second["input_ids"], attention_mask_b=second["attention_mask"])
        return out


class SubsetBatcher:
    """A view of another batcher's rows (e.g. a bootstrap resample, repeats allowed)."""

    def __init__(self, base: Batcher, rows: np.ndarray):
        self.base, self.rows = base, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        return self.base.batch(self.rows[rows], device)
