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

from weaklift.methods.base import MethodOptions
from weaklift.methods.ensemble import (
    Combine,
    EnsembleTargetMethod,
    Weighting,
    per_example_soft_ce,
)


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


class Joint(EnsembleTargetMethod):
    name = "joint"
    version = 1
    paper = (
        "Cui et al. 2024, Bayesian WeakS-to-Strong from Text Classification to Generation "
        "(joint ensemble target)"
    )
    Options = JointOptions

    def hardening_schedule(self) -> tuple[float, float] | None:
        return (self.options.alpha, self.options.warmup) if self.options.base == "logconf" else None

    def loss(
        self,
        logits: torch.Tensor,
        weak_probs: torch.Tensor,
        progress: float,
        context: torch.Tensor | None,
    ) -> torch.Tensor:
        ex_w, member_w, hardened = self.unpack_context(logits, weak_probs, context)
        target = self.target(weak_probs, member_w, hardened, progress)  # (b, K)
        return (ex_w * per_example_soft_ce(logits, target)).mean()
