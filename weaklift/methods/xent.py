"""Naive weak-to-strong: cross-entropy against the weak supervisor's soft labels (Burns et al. 2023)."""

from __future__ import annotations

import torch

from weaklift.methods.base import BaseMethod, MethodOptions, soft_cross_entropy


class XentOptions(MethodOptions):
    pass


class Xent(BaseMethod):
    name = "xent"
    version = 1
    paper = "Burns et al. 2023, Weak-to-Strong Generalization (naive finetuning baseline)"
    Options = XentOptions

    def loss(
        self, logits: torch.Tensor, weak_probs: torch.Tensor, progress: float, context=None
    ) -> torch.Tensor:
        return soft_cross_entropy(logits, weak_probs)
