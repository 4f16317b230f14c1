"""Cross-entropy against the weak supervisor's argmax labels (hard pseudo-labels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from weaklift.methods.base import BaseMethod, MethodOptions


class HardOptions(MethodOptions):
    pass


class Hard(BaseMethod):
    name = "hard"
    version = 1
    paper = "Burns et al. 2023, Weak-to-Strong Generalization (hard-label baseline)"
    Options = HardOptions

    def loss(
        self, logits: torch.Tensor, weak_probs: torch.Tensor, progress: float, context=None
    ) -> torch.Tensor:
        return F.cross_entropy(logits.float(), weak_probs.argmax(dim=-1))
