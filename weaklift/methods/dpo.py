"""Preference-optimisation losses on (chosen, rejected) pairs: DPO, conservative DPO, IPO.

Every loss reads the same four summed response log-probs per pair (policy and frozen reference,
chosen y_w and rejected y_l) and returns one loss per pair, (b,). With

    h = (log πθ(y_w|x) − log π_ref(y_w|x)) − (log πθ(y_l|x) − log π_ref(y_l|x))

- ``dpo``  (Rafailov et al. 2023):          −log σ(βh)
- ``cdpo`` (conservative DPO; Mitchell 2023, used by Cui et al. 2024 for weak judges):
                                             −(1 − ε)·log σ(βh) − ε·log σ(−βh)
  i.e. DPO against a label that is right with probability 1 − ε (ε = 0.1 in Cui et al.'s scripts).
- ``ipo``  (Azar et al. 2023), as TRL computes it: (h̄ − 1/(2β))², with h̄ the same margin built from
  per-token (length-normalised) log-probs.

The tests check them against TRL's ``DPOTrainer`` on the same model and inputs (``sigmoid``; ``ipo``;
cdpo as (1 − ε)·``sigmoid`` + ε·``sigmoid`` on the swapped pair, since TRL 1.x has no cDPO type).
They are written here because TRL computes them inside its ``Trainer`` subclass, which weaklift's
loop does not use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F
from pydantic import Field

from weaklift.methods.base import MethodOptions


@dataclass(frozen=True)
class PairLogps:
    """Summed response log-probs of b pairs under the policy and the reference, each (b,)."""

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    reference_chosen: torch.Tensor
    reference_rejected: torch.Tensor
    chosen_tokens: torch.Tensor  # (b,) response tokens scored, for length-normalised losses
    rejected_tokens: torch.Tensor

    def chosen_logratio(self) -> torch.Tensor:
        return self.policy_chosen - self.reference_chosen

    def rejected_logratio(self) -> torch.Tensor:
        return self.policy_rejected - self.reference_rejected

    def margin(self) -> torch.Tensor:
        """h per pair, (b,): how much more the policy (vs the reference) favours y_w over y_l."""
        return self.chosen_logratio() - self.rejected_logratio()


class PreferenceLoss(Protocol):
    name: ClassVar[str]
    paper: ClassVar[str]
    version: ClassVar[int]  # bump when the loss changes: every policy trained with it retrains
    Options: ClassVar[type[MethodOptions]]
    options: MethodOptions

    def __init__(self, options: MethodOptions | None = None) -> None: ...

    def __call__(self, logps: PairLogps) -> torch.Tensor:
        """Loss per pair, (b,); the training loop averages it over the optimizer batch."""
        ...


class DPOOptions(MethodOptions):
    beta: float = Field(
        0.1, gt=0, description="β: inverse strength of the pull towards the reference model."
    )


class CDPOOptions(DPOOptions):
    epsilon: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="ε: probability that a pair's label is wrong (label smoothing); 0 gives DPO.",
    )


class _PreferenceLossBase:
    Options: ClassVar[type[MethodOptions]] = DPOOptions
    version: ClassVar[int] = 1

    def __init__(self, options: MethodOptions | None = None):
        self.options = options or self.Options()

    @property
    def beta(self) -> float:
        return self.options.beta


class DPO(_PreferenceLossBase):
    name = "dpo"
    paper = "Rafailov et al. 2023, Direct Preference Optimization"

    def __call__(self, logps: PairLogps) -> torch.Tensor:
        return -F.logsigmoid(self.beta * logps.margin())


class ConservativeDPO(_PreferenceLossBase):
    name = "cdpo"
    paper = "Mitchell 2023, A note on DPO with noisy preferences; Cui et al. 2024 (weak judges)"
    Options = CDPOOptions

    def __call__(self, logps: PairLogps) -> torch.Tensor:
        logits = self.beta * logps.margin()
        eps = self.options.epsilon
        return -(1 - eps) * F.logsigmoid(logits) - eps * F.logsigmoid(-logits)


class IPO(_PreferenceLossBase):
    name = "ipo"
    paper = "Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from Human Preferences"

    def __call__(self, logps: PairLogps) -> torch.Tensor:
        chosen = logps.chosen_logratio() / logps.chosen_tokens.clamp_min(1)
        rejected = logps.rejected_logratio() / logps.rejected_tokens.clamp_min(1)
        return (chosen - rejected - 1 / (2 * self.beta)) ** 2


def implicit_rewards(logps: PairLogps, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's implicit rewards β·log(πθ/π_ref) of the chosen and the rejected responses, (b,) each."""
    return beta * logps.chosen_logratio().detach(), beta * logps.rejected_logratio().detach()
