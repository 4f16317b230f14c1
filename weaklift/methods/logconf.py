"""Auxiliary confidence loss (Burns et al. 2023, section 4.3.2).

target = (1 − c)·weak + c·hardened(student), c = alpha · min(1, progress / warmup).

Unlike openai/weak-to-strong, c rises smoothly to alpha with no jump at the end of warm-up.
The hardening keeps the weak labels' class balance exactly: class k gets a quota of
mean_i(weak_ik)·B examples (largest-remainder rounding, so the quotas sum to B), filled greedily
from the most confident (example, class) pairs; for K = 2 that is a threshold on P(class 1) that
gives exactly round(mean weak P(class 1)·B) examples class 1, also with tied probabilities and with
a batch of one. (The paper's code thresholds at a quantile with ``>=``, which puts every tied
example in class 0.) Both are computed over the whole optimizer batch.
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


HARDENING_VERSION = 1  # bump when harden_balanced changes: logconf, joint and bayes retrain


def class_quotas(weak_probs: torch.Tensor, batch: int) -> torch.Tensor:
    """Examples per class (K,) summing to ``batch``, proportional to the weak labels' mean.

    Largest-remainder rounding: every quota is ⌊mean_k·B⌋ or one more, the extra units going to the
    largest remainders (ties to the lower class index), so no quota is negative and they sum to B.
    """
    probs = weak_probs.float().clamp_min(0)
    share = (probs / probs.sum(dim=-1, keepdim=True)).mean(dim=0) * batch  # (K,), sums to B
    quotas = torch.floor(share + 1e-6).long()  # the epsilon absorbs float error in exact shares
    remainders = share - quotas
    missing = batch - int(quotas.sum())
    if missing > 0:
        order = torch.argsort(-remainders, stable=True)
        quotas[order[:missing]] += 1
    return quotas


def harden_balanced(student_probs: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
    """One-hot hardened student predictions (B, K) whose class counts are exactly the quotas.

    Binary: the ``quota[1]`` examples with the highest P(class 1) become class 1 (ties by position).
    K > 2: (example, class) pairs in decreasing probability, each taken while the example is free
    and the class has room; with quotas summing to B every example ends up assigned.
    """
    batch, num_classes = student_probs.shape
    quotas = class_quotas(weak_probs, batch)
    hard = torch.zeros_like(student_probs)
    if num_classes == 2:
        order = torch.argsort(-student_probs[:, 1].float(), stable=True)  # most class-1-like first
        is_class1 = torch.zeros(batch, dtype=torch.bool, device=student_probs.device)
        is_class1[order[: int(quotas[1])]] = True
        hard[is_class1, 1] = 1.0
        hard[~is_class1, 0] = 1.0
        return hard
    remaining = quotas.tolist()
    order = torch.argsort(-student_probs.float().flatten(), stable=True)
    assigned = [False] * batch
    for flat in order.tolist():
        example, klass = divmod(flat, num_classes)
        if not assigned[example] and remaining[klass] > 0:
            hard[example, klass] = 1.0
            assigned[example] = True
            remaining[klass] -= 1
    return hard


class Logconf(BaseMethod):
    name = "logconf"
    version = 1
    paper = (
        "Burns et al. 2023, Weak-to-Strong Generalization, auxiliary confidence loss (sec. 4.3.2)"
    )
    Options = LogconfOptions
    shared_versions = {"hardening": HARDENING_VERSION}
    needs_batch_context = True

    def hardening_schedule(self) -> tuple[float, float]:
        """(final weight, warm-up fraction) of the hardened student labels in the target."""
        return self.options.alpha, self.options.warmup

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
