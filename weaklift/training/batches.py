"""Turn example indices into model inputs: cached features, or tokens padded per batch."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from weaklift.models.features import collate

# Length grouping sorts inside buckets of this many batches (Hugging Face's LengthGroupedSampler
# uses 50): wide enough that neighbours have similar lengths, narrow enough to stay shuffled.
BUCKET_BATCHES = 50


class Batcher(Protocol):
    def __len__(self) -> int: ...

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]: ...

    def lengths(self) -> np.ndarray | None:
        """Padded width each row needs (tokens), or None where rows have no length (features)."""
        ...


def epoch_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    lengths: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One epoch's optimizer batches: every row exactly once, in a seeded random order.

    With ``lengths``, length-grouped: the shuffled rows are cut into buckets of ``BUCKET_BATCHES``
    batches, each bucket sorted by length and cut into batches, and the batches shuffled again,
    so a batch pads to a width close to its rows' own (less wasted compute) while which rows meet
    and in what order stay random.
    """
    order = torch.randperm(n, generator=generator).numpy()
    if lengths is None:
        return chunks(order, batch_size)
    lengths = np.asarray(lengths)
    bucket = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, n, bucket):
        rows = order[start : start + bucket]
        batches += chunks(rows[np.argsort(-lengths[rows], kind="stable")], batch_size)
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


def inference_batches(lengths: np.ndarray | None, n: int, batch_size: int) -> list[np.ndarray]:
    """Batches for a no-grad pass: by length, longest first, where rows have lengths (outputs are
    put back in row order by the caller), else in row order."""
    rows = np.arange(n) if lengths is None else np.argsort(-np.asarray(lengths), kind="stable")
    return chunks(rows, batch_size)


def chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


class FeatureBatcher:
    """Probe mode: rows of a precomputed (N, H) feature matrix (and the second texts' for pairs)."""

    def __init__(self, features: np.ndarray, features_b: np.ndarray | None = None):
        self.features = torch.as_tensor(features, dtype=torch.float32)
        self.features_b = (
            None if features_b is None else torch.as_tensor(features_b, dtype=torch.float32)
        )

    def __len__(self) -> int:
        return len(self.features)

    def lengths(self) -> None:
        return None

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

    def lengths(self) -> np.ndarray:
        own = np.array([len(ids) for ids in self.ids])
        return own if self.second is None else np.maximum(own, self.second.lengths())

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

    def lengths(self) -> np.ndarray | None:
        base = self.base.lengths()
        return None if base is None else base[self.rows]

    def batch(self, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        return self.base.batch(self.rows[rows], device)
