"""Frozen-backbone feature extraction for probe mode: one pooled vector per text and layer.

Speed on a small CPU comes from doing less work, not from tricks:
1. tokenize every text once, without padding;
2. sort by length (longest first) so each batch holds similar lengths and pads only to its own max,
   and cap a batch at ``max_batch_tokens`` padded tokens so long texts stay cache-friendly;
3. run the base model only (never the LM head) under ``torch.inference_mode()``; pool the last
   hidden state, or (``all_layers=True``) every hidden state of the same single forward pass, so a
   probe can later read any layer without running the model again;
4. scatter each batch's pooled rows back to the texts' original positions.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from weaklift import distributed
from weaklift.errors import WeakliftError
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
    all_layers: bool = False,
) -> np.ndarray:
    """Pooled last hidden states (N, H) float32, row i belonging to ``texts[i]``; with
    ``all_layers`` every hidden state instead, (N, L+1, H) (index 0 = embeddings, -1 = last)."""
    how = resolve_pooling(pooling, backbone.is_decoder)
    states = (num_hidden_states(backbone),) if all_layers else ()
    features = np.empty((len(texts), *states, backbone.hidden_size), dtype=np.float32)
    if not texts:
        return features
    ids = tokenize(backbone, texts, max_length)
    bar = tqdm(
        total=len(texts), desc=f"features {backbone.name}", unit="text", disable=not progress
    )
    backbone.model.eval()  # a pristine backbone must never run with dropout
    batches = length_sorted_batches([len(seq) for seq in ids], batch_size, max_batch_tokens)

    def embed(rows: np.ndarray) -> np.ndarray:
        embedded = _embed_batch(backbone, [ids[i] for i in rows], how, all_layers)
        bar.update(len(rows) * distributed.processes())  # the bar counts every process's rows
        return embedded

    with torch.inference_mode(), bar:  # several processes: each embeds its share of the batches
        for rows, embedded in zip(batches, distributed.map_sharded(batches, embed), strict=True):
            features[rows] = embedded
    return features


def num_hidden_states(backbone: LoadedBackbone) -> int:
    """Embeddings plus one state per transformer block: ``num_hidden_layers + 1``."""
    config = backbone.model.config
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    if not isinstance(layers, int):
        raise ValueError(f"cannot tell the number of layers of {backbone.name}")
    return layers + 1


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


def _embed_batch(
    backbone: LoadedBackbone, ids: list[list[int]], how: str, all_layers: bool
) -> np.ndarray:
    input_ids, mask = collate(ids, backbone.tokenizer.pad_token_id)
    device = backbone.device
    mask = mask.to(device)
    kwargs = {"use_cache": False} if backbone.is_decoder else {}
    out = backbone.model(
        input_ids=input_ids.to(device),
        attention_mask=mask,
        output_hidden_states=all_layers,
        return_dict=True,
        **kwargs,
    )
    if not all_layers:
        return pool(out.last_hidden_state, mask, how).float().cpu().numpy()  # (B, H)
    pooled = [pool(state, mask, how) for state in out.hidden_states]  # L+1 × (B, H)
    return torch.stack(pooled, dim=1).float().cpu().numpy()  # (B, L+1, H)


def resolve_layers(layer: int | str | list[int], num_states: int) -> list[int]:
    """Hidden-state indices for a ``layer`` setting: an index (negative counts from the end, so
    -1 is the last state and 0 the embeddings), ``"middle"`` (``num_states // 2``), or a list
    of indices whose states are concatenated. Raises a WeakliftError naming the valid range."""
    if layer == "middle":
        return [num_states // 2]
    wanted = layer if isinstance(layer, list) else [layer]
    resolved = []
    for index in wanted:
        if isinstance(index, bool) or not isinstance(index, int):
            raise WeakliftError(f"layer {index!r} is not an index", "use an int, middle or a list")
        if not -num_states <= index < num_states:
            raise WeakliftError(
                f"layer {index} is out of range for a model with {num_states} hidden states",
                f"use 0..{num_states - 1} (0 = embeddings), a negative index, or middle",
            )
        resolved.append(index % num_states)
    return resolved


def compact(hidden: np.ndarray) -> np.ndarray:
    """float16 halves the cache (a probe standardises its inputs, so 3 significant digits are
    plenty); states too large for float16 (some models have huge outlier activations) stay float32."""
    if hidden.size and float(np.abs(hidden).max()) >= float(np.finfo(np.float16).max):
        return hidden.astype(np.float32)
    return hidden.astype(np.float16)
