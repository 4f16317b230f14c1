"""``sft``: teacher forcing on the weak 1-best output (the naive baseline; Cui et al. 2024)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from weaklift.methods.generation.base import BaseGenMethod, TokenTargets


class Sft(BaseGenMethod):
    name = "sft"
    paper = "Cui et al. 2024 (naive weak-to-strong baseline); Burns et al. 2023"

    def token_loss(
        self, logits: torch.Tensor, targets: TokenTargets, shares: torch.Tensor, progress: float
    ) -> torch.Tensor:
        """−log q(label) per token; the weak confidence is ignored."""
        return F.cross_entropy(logits.float(), targets.labels, reduction="none")
