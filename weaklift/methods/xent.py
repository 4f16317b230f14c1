"""Naive weak-to-strong: cross-entropy against the weak supervisor's soft labels (Burns et al. 2023)."""

from __future__ import annotations

import torch

from weaklift.methods.base import MethodOptions, soft_cross_entropy


class XentOptions(MethodOptions):
    pass


class Xent:
    name = "xent"
    paper = "Burns et al. 2023, Weak-to-Strong Generalization (naive finetuning baseline)"
    Options = XentOptions
    needs_batch_context = False

    def __init__(self, options: XentOptions | None = None):
        self.options = options or XentOptions()

    def batch_context(self, student_probs, weak_probs, progress):
        return None

    def loss(self, logits: torch.Tensor, weak_probs: torch.Tensor, progress: float, context=None) -> torch.Tensor:
        return soft_cross_entropy(logits, weak_probs)
