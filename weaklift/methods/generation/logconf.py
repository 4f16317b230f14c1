"""``logconf`` for generation: mix the weak token target with the student's hardened prediction
(Burns et al. 2023, sec. 4.3.2, per token; Cui et al. 2024 use it as a generation baseline)."""

from __future__ import annotations

import torch
from pydantic import Field

from weaklift.methods.base import MethodOptions
from weaklift.methods.generation.base import (
    BaseGenMethod,
    TokenTargets,
    hardened,
    soft_cross_entropy_per_token,
    soft_token_targets,
    warmup_weight,
)


class GenLogconfOptions(MethodOptions):
    alpha: float = Field(0.5, ge=0, le=1, description="Final weight of the hardened prediction.")
    warmup: float = Field(
        0.2, ge=0, le=1, description="Fraction of training over which the weight rises to alpha."
    )


class GenLogconf(BaseGenMethod):
    name = "logconf"
    paper = "Burns et al. 2023, sec. 4.3.2 (auxiliary confidence loss), per token"
    Options = GenLogconfOptions

    def token_loss(
        self, logits: torch.Tensor, targets: TokenTargets, shares: torch.Tensor, progress: float
    ) -> torch.Tensor:
        """CE((1 − c)·t + c·h, q), c = alpha · min(1, progress / warmup), h = one-hot argmax q."""
        c = warmup_weight(self.options.alpha, self.options.warmup, progress)
        target = (1 - c) * soft_token_targets(logits, targets.labels, shares) + c * hardened(logits)
        return soft_cross_entropy_per_token(logits, target)
