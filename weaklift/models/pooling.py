"""Pooling token states into one vector per text.

Decoders only see the past, so their last real token summarises the whole text ("last"); encoders
see everything at once and are usually read out by a masked mean ("mean"). Sequences are always
RIGHT-padded in weaklift, so the last real token sits at ``mask.sum(1) - 1``.
"""

from __future__ import annotations

import torch

from weaklift.errors import WeakliftError

POOLINGS = ("last", "mean")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Reduce ``hidden`` (B, T, H) to (B, H), ignoring positions where ``attention_mask`` is 0."""
    if how == "last":
        return _last_token(hidden, attention_mask)
    if how == "mean":
        return _masked_mean(hidden, attention_mask)
    raise WeakliftError(f"unknown pooling {how!r}", f"use one of {', '.join(POOLINGS)} or auto")


def _last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    last = (attention_mask.sum(dim=1) - 1).clamp(min=0).long()  # (B,) index of the last real token
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last.to(hidden.device)]  # (B, H)


def _masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.to(hidden.device, hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (hidden * mask).sum(dim=1)  # (B, H)
    return total / mask.sum(dim=1).clamp(min=1.0)


def resolve_pooling(cfg_pooling: str, is_decoder: bool) -> str:
    """``auto`` means last-token for decoders and mean for encoders; explicit choices pass through."""
    if cfg_pooling == "auto":
        return "last" if is_decoder else "mean"
    if cfg_pooling not in POOLINGS:
        raise WeakliftError(f"unknown pooling {cfg_pooling!r}", "use auto, last or mean")
    return cfg_pooling
