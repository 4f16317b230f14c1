"""Product of experts: target ∝ weak^alpha · student^beta, detached (EleutherAI/w2s `product` loss)."""

from __future__ import annotations

import torch
from pydantic import Field

from weaklift.methods.base import BaseMethod, MethodOptions, soft_cross_entropy


class ProductOptions(MethodOptions):
    alpha: float = Field(1.0, ge=0, description="Exponent on the weak label.")
    beta: float = Field(1.0, ge=0, description="Exponent on the student's own prediction.")


class Product(BaseMethod):
    name = "product"
    version = 1
    paper = "EleutherAI/w2s (product-of-experts target), after Burns et al. 2023"
    Options = ProductOptions

    def loss(
        self, logits: torch.Tensor, weak_probs: torch.Tensor, progress: float, context=None
    ) -> torch.Tensor:
        student = torch.softmax(logits.float(), dim=-1).detach()
        log_target = self.options.alpha * torch.log(
            weak_probs.float().clamp_min(1e-12)
        ) + self.options.beta * torch.log(student.clamp_min(1e-12))
        target = torch.softmax(log_target, dim=-1)  # normalised product, computed in log space
        return soft_cross_entropy(logits, target)
