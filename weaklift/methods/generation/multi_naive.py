"""``multi_naive`` for generation: one soft loss per weak generator's 1-best, weighted
(Cui et al. 2024). Weights: uniform, fixed (``weights``), or dynamic — a softmax over the members'
mean token confidence on the optimizer batch, divided by ``temperature``."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from weaklift.methods.base import MethodOptions
from weaklift.methods.generation.soft import Soft


class GenMultiNaiveOptions(MethodOptions):
    weighting: Literal["uniform", "fixed", "dynamic"] = Field(
        "uniform", description="uniform 1/M, fixed (`weights`), or dynamic (member confidence)."
    )
    weights: list[float] | None = Field(
        None, description="Fixed member weights (normalised), one per weak member."
    )
    temperature: float = Field(
        0.1, gt=0, description="Dynamic weights: softmax(mean confidence / temperature)."
    )


class GenMultiNaive(Soft):
    name = "multi_naive"
    paper = "Cui et al. 2024, Bayesian WeakS-to-Strong from Text Classification to Generation"
    Options = GenMultiNaiveOptions
    multi_weak = True

    def member_weights(self, confidence: torch.Tensor) -> torch.Tensor:
        """(M,) weights summing to 1 from the members' mean token probability (M,) on the batch."""
        o = self.options
        if o.weighting == "dynamic":
            return torch.softmax(confidence / o.temperature, dim=0)
        if o.weighting == "fixed":
            if o.weights is None or len(o.weights) != len(confidence):
                raise ValueError(f"multi_naive: give {len(confidence)} weights for fixed weighting")
            w = torch.tensor(o.weights, dtype=torch.float32)
            return w / w.sum()
        return torch.full((len(confidence),), 1.0 / len(confidence))
