"""Frozen-backbone feature extraction for probe mode: one pooled vector per text.

Speed on a small CPU comes from doing less work, not from tricks:
1. tokenize every text once, without padding;
2. sort by length (longest first) so each batch holds similar lengths and pads only to its own max,
   and cap a batch at ``max_batch_tokens`` padded tokens so long texts stay cache-friendly;
3. run the base model only (never the LM head) under ``torch.inference_mode()`` and read
   ``last_hidden_state`` (no per-layer hidden states are kept);
4. scatter each batch's pooled rows back to the texts' original positions.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from weaklift.models.loading import LoadedBackbone
from weaklift.models.pooling import pool, resolve_pooling

# Measured on a 2-core CPU (benchmarks/feature_extraction.py): with length-sorted batches 16 and 32
# tie (within noise) and beat 8 by ~25%; 32 matches the config default (model.extract_batch_size).
DEFAULT_BATCH_SIZE = 32
# Long texts: past ~1k padded tokens per batch, activations spill out of cache and throughput drops.
DEFAULT_MAX_BATCH_TOKENS = 1024


def extract_features(
    backbone: LoadedBackbone,
    texts: list[str],
    pooling: str = "auto",
    max_length: int = 256,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
) -> np.ndarray:
    """Pooled last hidden states (N, H) float32, row i belonging to ``texts[i]``."""
    how = resolve_pooling(pooling, backbone.is_decoder)
    features = np.empty((len(texts), backbone.hidden_size), dtype=np.float32)
    if not texts:
        return features
    ids = tokenize(backbone, texts, max_length)
    bar = tqdm(
        total=len(texts), desc=f"features {backbone.name}", unit="text", disable=not progress
    )
    with torch.inference_mode(), bar:
        for rows in length_sorted_batches([len(seq) for seq in ids], batch_size, max_batch_tokens):
            features[rows] = _embed_batch(backbone, [ids[i] for i in rows], how)
            bar.update(len(rows))
    return features


def length_sorted_batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Index batches, longest texts first (peak memory up front), each at most ``batch_size`` texts
    and at most ``max_tokens`` padded tokens (long texts get smaller batches); never empty."""
    order = np.argsort([-n for n in lengths], kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = lengths[order[start]]  # the longest in this batch, since sorted
        size = max(1, min(batch_size, max_tokens // max(width, 1)))
        batches.append(order[start : start + size])
        start += size
    return batches


def tokenize(backbone: LoadedBackbone, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated, unpadded; an empty text becomes one special token."""
    tokenizer = backbone.tokenizer
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    filler = next(
        t
        for t in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
        if t is not None
    )
    return [seq if seq else [filler] for seq in ids]


def collate(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence in this batch: input_ids and attention_mask, both (B, T)."""
    width = max(len(seq) for seq in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def _embed_batch(backbone: LoadedBackbone, ids: list[list[int]], how: str) -> np.ndarray:
    input_ids, mask = collate(ids, backbone.tokenizer.pad_token_id)
    device = backbone.device
    kwargs = {"use_cache": False} if backbone.is_decoder else {}
    out = backbone.model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        output_hidden_states=False,
        return_dict=True,
        **kwargs,
    )
    hidden = out.last_hidden_state  # (B, T, H)
    return pool(hidden, mask.to(device), how).float().cpu().numpy()  # (B, H)
