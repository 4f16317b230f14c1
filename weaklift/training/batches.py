"""Turn example indices into model inputs: cached features, or tokens padded per batch."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class Batcher(Protocol):
    def __len__(self) -> int: ...

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]: ...


class FeatureBatcher:
    """Probe mode: rows of a precomputed (N, H) feature matrix."""

    def __init__(self, features: np.ndarray):
        self.features = torch.as_tensor(features, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.features)

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        return {"features": self.features[torch.as_tensor(rows)].to(device)}


class TokenBatcher:
    """LoRA/full mode: texts tokenised once, right-padded to each batch's own longest row."""

    def __init__(self, tokenizer, texts: list[str], max_length: int):
        encoded = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)
        self.ids = [list(ids) for ids in encoded["input_ids"]]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        seqs = [self.ids[int(r)] for r in rows]
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):
            input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            attention_mask[i, : len(seq)] = 1
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


class SubsetBatcher:
    """A view of another batcher's rows (e.g. a bootstrap resample, repeats allowed)."""

    def __init__(self, base: Batcher, rows: np.ndarray):
        self.base, self.rows = base, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        return self.base.batch(self.rows[rows], device)
