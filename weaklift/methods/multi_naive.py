"""Multi-weak naive finetuning (Cui et al. 2024): a weighted sum of per-member soft cross-entropies.

loss_i = Σ_m w_m · CE(p_m,i, softmax(z_i)), averaged over examples with optional per-example
weights. By linearity this equals cross-entropy against the weighted mean of the members; the
per-member form is kept because it is how the paper states the baseline.

Dynamic member weights are a softmax of each member's accuracy on weak_holdout (weak-side ground
truth the pipeline measures and passes as ``member_accuracy``), never of its confidence. The
normalisation of example weights is computed over the whole optimizer batch (``batch_context``):
gradient accumulation changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field, field_validator

from weaklift.methods.base import MethodOptions
from weaklift.methods.ensemble import (
    MultiWeakMethod,
    Weighting,
    dynamic_member_weights,
    example_weights,
    normalise_weights,
    pack_batch_stats,
)


class MultiNaiveOptions(MethodOptions):
    weights: Literal["uniform", "dynamic"] | list[Annotated[float, Field(ge=0)]] = Field(
        "uniform",
        description="Member weights: uniform; dynamic (softmax of each member's weak_holdout "
        "accuracy / temperature); or one non-negative number per weak member, rescaled to sum 1.",
    )
    member_accuracy: list[float] | None = Field(
        None,
        description="Filled by the pipeline: each member's accuracy on weak_holdout (read by "
        "dynamic weights). Any value set in a config is replaced.",
    )
    temperature: float = Field(
        1.0,
        gt=0,
        description="Softmax temperature for dynamic weights; lower favours the surest member.",
    )
    weighting: Weighting = Field(
        "none", description="Per-example weights from member agreement: none, entropy or dirichlet."
    )

    @field_validator("weights")
    @classmethod
    def _positive_total(cls, value):
        if isinstance(value, list) and (not value or sum(value) <= 0):
            raise ValueError("a weight list needs at least one positive entry")
        return value


class MultiNaive(MultiWeakMethod):
    name = "multi_naive"
    version = 1
    paper = (
        "Cui et al. 2024, Bayesian WeakS-to-Strong from Text Classification to Generation "
        "(multi-weak naive baseline)"
    )
    Options = MultiNaiveOptions

    def __init__(self, options: MultiNaiveOptions | None = None):
        super().__init__(options)
        # batch-level statistics only when example weights are normalised over the batch
        self.needs_batch_context = self.options.weighting != "none"

    def member_weights(self, member_probs: torch.Tensor) -> torch.Tensor:
        """Weights (M,) summing to 1 for the members in ``member_probs`` (B, M, K)."""
        num_members = member_probs.shape[1]
        weights = self.options.weights
        if weights == "uniform":
            return torch.full((num_members,), 1.0 / num_members, device=member_probs.device)
        if weights == "dynamic":
            accuracy = self.options.member_accuracy
            if accuracy is None or len(accuracy) != num_members:
                raise ValueError(
                    f"{self.name}: dynamic weights need each member's weak_holdout accuracy "
                    f"(member_accuracy, {num_members} values), which the pipeline fills in"
                )
            return dynamic_member_weights(accuracy, self.options.temperature).to(
                member_probs.device
            )
        if len(weights) != num_members:
            raise ValueError(
                f"methods.*.weights (method {self.name}): {len(weights)} weights given but "
                f"the weak ensemble has {num_members} members; list one weight per weak model"
            )
        return normalise_weights(weights).to(member_probs.device)

    def _batch_stats(self, student_probs: torch.Tensor, member_probs: torch.Tensor) -> torch.Tensor:
        ex_w = example_weights(member_probs, self.options.weighting)  # (B,)
        return pack_batch_stats(ex_w, self.member_weights(member_probs))  # (B, 1 + M)

    def loss(
        self,
        logits: torch.Tensor,
        weak_probs: torch.Tensor,
        progress: float,
        context: torch.Tensor | None,
    ) -> torch.Tensor:
        ex_w, member_w, _ = self.unpack_context(logits, weak_probs, context)
        log_q = torch.log_softmax(logits.float(), dim=-1)  # (b, K)
        per_example = -torch.einsum("bmk,m,bk->b", weak_probs.float(), member_w, log_q)  # (b,)
        return (ex_w * per_example).mean()
