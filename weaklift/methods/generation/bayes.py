"""``bayes`` for generation: an evidential (Dirichlet) loss over the vocabulary at each target
token, guided by the weak token targets (Cui et al. 2024; Sensoy et al. 2018).

    α = exp(min(z, 30)) + 1,  S = Σ_v α_v
    loss = Σ_v y_v (log S − log α_v) + λ · min(1, progress / anneal) · KL(Dir(α̃) ‖ Dir(1)) / V,
    α̃ = (α − 1)(1 − y) + 1,   y = (1 − c)·t + c·h  (h = the student's argmax; c = 0 unless aux_alpha)

The KL is divided by the vocabulary size V (a mean over classes, where Sensoy et al. sum over K
classes): summed over Gemma's 262k tokens, most of which hold evidence exp(z) > 1 in a pretrained
LM, it reached ~10^4 per token and, even at λ = 0.1, wrecked the student in the first SLURP run
(train loss ~1000, gibberish output). Divided by V, λ means the same at any vocabulary size.
"""

from __future__ import annotations

import torch
from pydantic import Field

from weaklift.methods.base import MethodOptions
from weaklift.methods.bayes import (
    evidential_log_loss,
    kl_anneal,
    kl_to_uniform_dirichlet,
)
from weaklift.methods.generation.base import (
    BaseGenMethod,
    TokenTargets,
    hardened,
    soft_token_targets,
    warmup_weight,
)

# Logits are clamped above at 30 (not the classifier's 10): with a 262k vocabulary the other tokens
# already hold evidence ~V, so a confident token needs exp(z) >> V (z >> 12.5), and a clamp at 10
# would cut the label's gradient off. exp(30) ~ 1e13 keeps lgamma finite in float32.
EXP_CLAMP = 30.0


def dirichlet_alpha(logits: torch.Tensor) -> torch.Tensor:
    """α = exp(min(z, EXP_CLAMP)) + 1, (N, V)."""
    return torch.exp(logits.float().clamp(max=EXP_CLAMP)) + 1


class GenBayesOptions(MethodOptions):
    lam: float = Field(
        1.0,
        ge=0,
        description="Final weight λ of the KL term (the KL is divided by the vocabulary size).",
    )
    anneal: float = Field(
        0.5, ge=0, le=1, description="Fraction of training over which the KL weight ramps to λ."
    )
    aux_alpha: float = Field(
        0.0, ge=0, le=1, description="Final weight of the student's own argmax in y; 0 = off."
    )
    aux_warmup: float = Field(
        0.2, ge=0, le=1, description="Fraction of training over which aux_alpha is reached."
    )


class GenBayes(BaseGenMethod):
    name = "bayes"
    paper = (
        "Cui et al. 2024, Bayesian WeakS-to-Strong from Text Classification to Generation; "
        "Sensoy et al. 2018, Evidential Deep Learning"
    )
    Options = GenBayesOptions
    version = 2  # 2: the KL term divided by the vocabulary size V

    def token_loss(
        self, logits: torch.Tensor, targets: TokenTargets, shares: torch.Tensor, progress: float
    ) -> torch.Tensor:
        o = self.options
        y = soft_token_targets(logits, targets.labels, shares)  # (N, V), constant
        if o.aux_alpha > 0:
            c = warmup_weight(o.aux_alpha, o.aux_warmup, progress)
            y = (1 - c) * y + c * hardened(logits)
        alpha = dirichlet_alpha(logits)  # (N, V)
        alpha_tilde = (alpha - 1) * (1 - y) + 1
        kl_weight = o.lam * kl_anneal(progress, o.anneal) / logits.shape[-1]
        return evidential_log_loss(alpha, y) + kl_weight * kl_to_uniform_dirichlet(alpha_tilde)
