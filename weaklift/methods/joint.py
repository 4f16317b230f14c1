"""Joint multi-weak supervision (Cui et al. 2024): combine the ensemble into one target, then train.

y = combine(p_1..p_M)  (mean, majority vote, or confidence-weighted log-opinion pool)
base = xent:    loss_i = CE(y_i, softmax(z_i))
base = logconf: loss_i = CE((1 − c)·y_i + c·h_i, softmax(z_i)), c = alpha·min(1, progress/warmup),
                h = balance-keeping hardened student labels (weaklift.methods.logconf), with the
                class balance taken from y over the whole optimizer batch.
The mean over examples is weighted by the optional per-example agreement weights (mean 1).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from weaklift.methods.base import BaseMethod, MethodOptions
from weaklift.methods.ensemble import (
    Combine,
    Weighting,
    check_members,
    combine,
    default_member_weights,
    example_weights,
    pack_batch_stats,
    per_example_soft_ce,
    unpack_batch_stats,
)
from weaklift.methods.logconf import confidence_weight, harden_balanced


class JointOptions(MethodOptions):
    combine: Combine = Field(
        "mean", description="How members become one target: mean, vote (majority) or logpool."
    )
    base: Literal["xent", "logconf"] = Field(
        "xent",
        description="Loss against the combined target: xent, or logconf (auxiliary confidence).",
    )
    alpha: float = Field(
        0.5, ge=0, le=1, description="logconf only: final weight of the hardened student labels."
    )
    warmup: float = Field(
        0.2,
        ge=0,
        le=1,
        description="logconf only: fraction of training over which c rises to alpha.",
    )
    weighting: Weighting = Field(
        "none", description="Per-example weights from member agreement: none, entropy or dirichlet."
    )


class Joint(BaseMethod):
    name = "joint"
    paper = (
        "Cui et al. 2024, Bayesian WeakS-to-Strong from Text Classification to Generation "
        "(joint ensemble target)"
    )
    Options = JointOptions
    multi_weak = True

    def __init__(self, options: JointOptions | None = None):
        super().__init__(options)
        o = self.options
        # hardening, the log pool's confidences and the example-weight mean are batch statistics
        self.needs_batch_context = (
            o.base == "logconf" or o.combine == "logpool" or o.weighting != "none"
        )

    def _batch_stats(self, student_probs: torch.Tensor, member_probs: torch.Tensor) -> torch.Tensor:
        member_w = default_member_weights(member_probs, self.options.combine)  # (M,)
        ex_w = example_weights(member_probs, self.options.weighting)  # (B,)
        hardened = None
        if self.options.base == "logconf":
            target = combine(member_probs, self.options.combine, member_w)  # (B, K)
            hardened = harden_balanced(student_probs.detach().float(), target)  # (B, K)
        return pack_batch_stats(ex_w, member_w, hardened)  # (B, 1 + M [+ K])

    def batch_context(
        self, student_probs: torch.Tensor, weak_probs: torch.Tensor, progress: float
    ) -> torch.Tensor | None:
        if not self.needs_batch_context:
            return None
        check_members(weak_probs, self.name)
        return self._batch_stats(student_probs, weak_probs)

    def target(
        self,
        member_probs: torch.Tensor,
        member_w: torch.Tensor,
        hardened: torch.Tensor | None,
        progress: float,
    ) -> torch.Tensor:
        """Training target (b, K): the combined ensemble, mixed with hardened labels for logconf."""
        y = combine(member_probs, self.options.combine, member_w)  # (b, K)
        if hardened is None:
            return y
        c = confidence_weight(progress, self.options.alpha, self.options.warmup)
        return (1 - c) * y + c * hardened

    def loss(
        self,
        logits: torch.Tensor,
        weak_probs: torch.Tensor,
        progress: float,
        context: torch.Tensor | None,
    ) -> torch.Tensor:
        check_members(weak_probs, self.name)
        if context is None:  # the micro-batch is the batch
            context = self._batch_stats(self.probabilities(logits.detach()), weak_probs)
        ex_w, member_w, hardened = unpack_batch_stats(context, weak_probs.shape[1])
        target = self.target(weak_probs, member_w, hardened, progress)  # (b, K)
        return (ex_w * per_example_soft_ce(logits, target)).mean()
