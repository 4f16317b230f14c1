"""Cross-entropy against the weak supervisor's argmax labels (hard pseudo-labels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from weaklift.methods.base import MethodOptions


class HardOptions(MethodOptions):
    pass


class Hard:
    name = "hard"
    paper = "Burns et al. 2023, Weak-to-Strong Generalization (hard-label baseline)"
    Options = HardOptions
    needs_batch_context = False

    def __init__(self, options: HardOptions | None = None):
        self.options = options or HardOptions()

    def batch_context(self, student_probs, weak_probs, progress):
        return None

    def loss(self, logits: torch.Tensor, weak_probs: torch.Tensor, progress: float, context=None) -> torch.Tensor:
        return F.cross_entropy(logits.float(), weak_probs.argmax(dim=-1))
