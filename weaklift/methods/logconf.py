"""Auxiliary confidence loss (Burns et al. 2023, section 4.3.2).

target = (1 − c)·weak + c·hardened(student), c = alpha · min(1, progress / warmup).

Unlike openai/weak-to-strong, c rises smoothly to alpha with no jump at the end of warm-up.
The hardening keeps the weak labels' class balance: in the binary case the threshold is the
quantile of the student's P(class 0) at the weak labels' mean P(class 1) (as in the paper's code);
with K > 2 classes each class gets a quota of round(mean weak prob · B) examples, filled greedily
from the most confident (example, class) pairs. Both are computed over the whole optimizer batch.
"""

from __future__ import annotations

import torch
from pydantic import Field

from weaklift.methods.base import BaseMethod, MethodOptions, soft_cross_entropy


class LogconfOptions(MethodOptions):
    alpha: float = Field(
        0.5, ge=0, le=1, description="Final weight of the student's hardened prediction."
    )
    warmup: float = Field(
        0.2, ge=0, le=1, description="Fraction of training over which c rises from 0 to alpha."
    )


def confidence_weight(progress: float, alpha: float, warmup: float) -> float:
    """c(t): linear from 0 to alpha over the warm-up fraction, then constant — continuous everywhere."""
    if warmup <= 0:
        return alpha
    return alpha * min(1.0, max(0.0, progress) / warmup)


def binary_threshold(student_probs: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
    """Quantile of P_student(class 0) such that the hardened labels keep the weak class balance."""
    return torch.quantile(student_probs[:, 0].float(), weak_probs[:, 1].float().mean())


def harden_balanced(student_probs: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
    """One-hot hardened student predictions (B, K) whose class counts follow the weak labels."""
    batch, num_classes = student_probs.shape
    if num_classes == 2:
        is_class0 = student_probs[:, 0] >= binary_threshold(student_probs, weak_probs)
        return torch.stack([is_class0, ~is_class0], dim=1).to(student_probs.dtype)
    quotas = torch.round(weak_probs.float().mean(dim=0) * batch).long()
    quotas[quotas.argmax()] += batch - quotas.sum()  # rounding slack goes to the largest class
    order = torch.argsort(student_probs.flatten(), descending=True)
    hard = torch.zeros_like(student_probs)
    assigned = torch.zeros(batch, dtype=torch.bool)
    for flat in order.tolist():
        example, klass = divmod(flat, num_classes)
        if not assigned[example] and quotas[klass] > 0:
            hard[example, klass] = 1.0
            assigned[example] = True
            quotas[klass] -= 1
    return hard


class Logconf(BaseMethod):
    name = "logconf"
    paper = (
        "Burns et al. 2023, Weak-to-Strong Generalization, auxiliary confidence loss (sec. 4.3.2)"
    )
    Options = LogconfOptions
    needs_batch_context = True

    def batch_context(
        self, student_probs: torch.Tensor, weak_probs: torch.Tensor, progress: float
    ) -> torch.Tensor:
        return harden_balanced(student_probs.detach(), weak_probs)

    def loss(
        self,
        logits: torch.Tensor,
        weak_probs: torch.Tensor,
        progress: float,
        context: torch.Tensor | None,
    ) -> torch.Tensor:
        if context is None:  # called without a batch context: the micro-batch is the batch
            context = self.batch_context(
                torch.softmax(logits.detach().float(), dim=-1), weak_probs, progress
            )
        c = confidence_weight(progress, self.options.alpha, self.options.warmup)
        target = (1 - c) * weak_probs.float() + c * context.float()
        return soft_cross_entropy(logits, target)
