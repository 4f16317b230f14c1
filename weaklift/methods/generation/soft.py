"""``soft``: KL to token-level soft targets built from the weak word log-probs (Cui et al. 2024)."""

from __future__ import annotations

import torch

from weaklift.methods.generation.base import BaseGenMethod, TokenTargets, soft_token_targets


class Soft(BaseGenMethod):
    name = "soft"
    paper = "Cui et al. 2024, Bayesian WeakS-to-Strong from Text Classification to Generation"

    def token_loss(
        self, logits: torch.Tensor, targets: TokenTargets, shares: torch.Tensor, progress: float
    ) -> torch.Tensor:
        """KL(t ‖ q) per token, t = soft_token_targets (constant); gradient q − t."""
        target = soft_token_targets(logits, targets.labels, shares)  # (N, V)
        logq = torch.log_softmax(logits.float(), dim=-1)
        return (torch.xlogy(target, target) - target * logq).sum(-1)
