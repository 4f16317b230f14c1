"""Evidential weak-to-strong learning from an ensemble (Cui et al. 2024, after Sensoy et al. 2018).

The head's outputs are read as evidence for a Dirichlet over class probabilities:
    e = g(z) ≥ 0 (softplus by default),  α = e + 1,  S = Σ_k α_k,  p̂ = α / S,  u = K / S.
The target is the combined ensemble y = combine(p_1..p_M) and the per-example loss is
    Σ_k y_k (log S − log α_k)                                  (Type-II maximum likelihood)
  + λ · min(1, progress / anneal) · KL(Dir(α̃) ‖ Dir(1)),  α̃ = (α − 1)(1 − y) + 1,
the KL removing evidence the target does not support. With ``aux_alpha`` > 0 the target becomes
y' = (1 − c)·y + c·h, h the balance-keeping hardened student prediction (as in logconf).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from weaklift.methods.base import MethodOptions
from weaklift.methods.ensemble import (
    Combine,
    EnsembleTargetMethod,
    Weighting,
)

Evidence = Literal["softplus", "exp", "relu"]
EXP_CLAMP = 10.0  # exp evidence clamps logits to ±10 (as in Sensoy et al.'s code) so α stays finite


class BayesOptions(MethodOptions):
    lam: float = Field(
        1.0, ge=0, description="Final weight λ of the KL term that removes unsupported evidence."
    )
    anneal: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Fraction of training over which the KL weight ramps from 0 to λ. At full "
        "strength early, the KL pulls examples the head still gets wrong to the uniform Dirichlet "
        "before it learns them (Sensoy et al. ramp over 10 epochs); 0.5 suits short runs and "
        "leaves the second half at full λ.",
    )
    evidence: Evidence = Field(
        "softplus", description="Map from logits to evidence: softplus, exp (clamped) or relu."
    )
    combine: Combine = Field(
        "mean", description="How members become the target y: mean, vote or logpool."
    )
    weighting: Weighting = Field(
        "none", description="Per-example weights from member agreement: none, entropy or dirichlet."
    )
    aux_alpha: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Final weight of the hardened student prediction in the target; 0 = off.",
    )
    aux_warmup: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Fraction of training over which the auxiliary weight rises to aux_alpha.",
    )


def evidence_from_logits(logits: torch.Tensor, how: Evidence = "softplus") -> torch.Tensor:
    """Non-negative evidence (B, K) from the head's outputs."""
    z = logits.float()
    if how == "softplus":
        return F.softplus(z)
    if how == "exp":
        return torch.exp(z.clamp(-EXP_CLAMP, EXP_CLAMP))
    if how == "relu":
        return F.relu(z)
    raise ValueError(f"evidence: unknown map {how!r}; choose softplus, exp or relu")


def evidential_log_loss(alpha: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ_k y_k (log S − log α_k) per example, (B,): −log of the Dirichlet-mean likelihood of y."""
    strength = alpha.sum(dim=-1, keepdim=True)  # (B, 1)
    return (y * (torch.log(strength) - torch.log(alpha))).sum(dim=-1)


def kl_to_uniform_dirichlet(alpha_tilde: torch.Tensor) -> torch.Tensor:
    """KL(Dir(α̃) ‖ Dir(1, …, 1)) per example, (B,)."""
    num_classes = alpha_tilde.shape[-1]
    total = alpha_tilde.sum(dim=-1)  # (B,)
    log_norm = (
        torch.lgamma(total)
        - torch.lgamma(torch.tensor(float(num_classes)))
        - torch.lgamma(alpha_tilde).sum(-1)
    )
    digamma_term = (
        (alpha_tilde - 1) * (torch.digamma(alpha_tilde) - torch.digamma(total)[:, None])
    ).sum(-1)
    return log_norm + digamma_term


def kl_anneal(progress: float, anneal: float) -> float:
    """Fraction of λ applied to the KL term: 0 at the start, linear, 1 from ``anneal`` on."""
    if anneal <= 0:
        return 1.0
    return min(1.0, max(0.0, progress) / anneal)


class Bayes(EnsembleTargetMethod):
    name = "bayes"
    version = 1
    paper = (
        "Cui et al. 2024, Bayesian WeakS-to-Strong from Text Classification to Generation; "
        "Sensoy et al. 2018, Evidential Deep Learning to Quantify Classification Uncertainty"
    )
    Options = BayesOptions
    # The evidence g(r(b)), g(r(a)) depends on each reward, not only on r(a) − r(b): a shift of
    # every reward would change the loss, so bayes has no Bradley–Terry form (validate rejects it).
    pairwise = False

    def dirichlet(self, logits: torch.Tensor) -> torch.Tensor:
        """Dirichlet parameters α = evidence + 1, (B, K)."""
        return evidence_from_logits(logits, self.options.evidence) + 1

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        alpha = self.dirichlet(logits)  # (B, K)
        return alpha / alpha.sum(dim=-1, keepdim=True)

    def uncertainty(self, logits: torch.Tensor) -> torch.Tensor:
        """Subjective-logic uncertainty K / S per example, (B,): 1 with no evidence at all."""
        alpha = self.dirichlet(logits)  # (B, K)
        return alpha.shape[-1] / alpha.sum(dim=-1)

    def hardening_schedule(self) -> tuple[float, float] | None:
        o = self.options
        return (o.aux_alpha, o.aux_warmup) if o.aux_alpha > 0 else None

    def loss(
        self,
        logits: torch.Tensor,
        weak_probs: torch.Tensor,
        progress: float,
        context: torch.Tensor | None,
    ) -> torch.Tensor:
        ex_w, member_w, hardened = self.unpack_context(logits, weak_probs, context)
        y = self.target(weak_probs, member_w, hardened, progress)  # (b, K)
        alpha = self.dirichlet(logits)  # (b, K)
        alpha_tilde = (alpha - 1) * (1 - y) + 1  # (b, K) evidence the target does not support
        kl_weight = self.options.lam * kl_anneal(progress, self.options.anneal)
        per_example = evidential_log_loss(alpha, y) + kl_weight * kl_to_uniform_dirichlet(
            alpha_tilde
        )
        return (ex_w * per_example).mean()
