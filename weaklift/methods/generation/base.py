"""The protocol of generation methods, and the token-level soft target they share.

A generation method turns the student's logits at the target positions of a micro-batch, ``(N, V)``
(N target tokens, V the strong vocabulary), and the weak supervision of those tokens into a loss per
token, ``(N,)``. The training loop sums them and divides by the optimizer batch's token count, so
gradient accumulation changes nothing.

The weak supervision of a token is its label (the strong token of the weak output) and a *share*:
the part of its weak word's log-prob that this token carries (``weaklift.alignment``). The soft
target puts exp(share) on the label and spreads the remaining mass over the other tokens in
proportion to the student's own DETACHED distribution, so the target never carries a gradient
(Cui et al. 2024 let gradients flow through it; here it is a constant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import torch

from weaklift.methods.base import MethodOptions

ShareMode = Literal["even", "entropy"]


@dataclass(frozen=True)
class TokenTargets:
    """The weak supervision of one micro-batch's N target tokens (flattened over examples)."""

    labels: torch.Tensor  # (N,) long: the token to predict
    word_index: torch.Tensor  # (N,) long: which weak word (unique over the micro-batch) it is in
    word_logprob: torch.Tensor  # (W,) float: log-prob of each word under the weak model(s); 0 = GT


class GenMethod(Protocol):
    name: ClassVar[str]
    paper: ClassVar[str]
    version: ClassVar[int]  # bump when the loss changes: every student trained with it retrains
    Options: ClassVar[type[MethodOptions]]
    multi_weak: ClassVar[bool]  # True: one loss per weak member's output, weighted (multi_naive)
    joint_target: ClassVar[bool]  # True: the target is the ensemble-rescored best candidate (joint)

    def __init__(self, options: MethodOptions) -> None: ...

    def token_loss(
        self,
        logits: torch.Tensor,  # (N, V) student logits at the target positions
        targets: TokenTargets,
        shares: torch.Tensor,  # (N,) each token's share of its word's log-prob
        progress: float,  # fraction of training done, in [0, 1]
    ) -> torch.Tensor:
        """Loss per target token, (N,)."""
        ...


class BaseGenMethod:
    """Defaults: one weak output per prompt (the first member's 1-best), version 1."""

    version: ClassVar[int] = 1
    multi_weak: ClassVar[bool] = False
    joint_target: ClassVar[bool] = False
    Options: ClassVar[type[MethodOptions]] = MethodOptions

    def __init__(self, options: MethodOptions | None = None):
        self.options = options or self.Options()


def token_shares(
    targets: TokenTargets, logits: torch.Tensor, mode: ShareMode = "even"
) -> torch.Tensor:
    """(N,) share of each token in its word's log-prob: evenly over the word's tokens, or in
    proportion to the student's detached entropy at each token (uncertain tokens carry more)."""
    with torch.no_grad():
        if mode == "even":
            weight = torch.ones_like(targets.labels, dtype=torch.float32)
        else:
            logp = torch.log_softmax(logits.detach().float(), dim=-1)  # (N, V)
            entropy = -(logp.exp() * logp).sum(-1)  # (N,)
            weight = entropy.clamp_min(1e-6)
        words = targets.word_logprob.shape[0]
        total = torch.zeros(words, device=weight.device).index_add_(0, targets.word_index, weight)
        return targets.word_logprob[targets.word_index] * weight / total[targets.word_index]


def soft_token_targets(
    logits: torch.Tensor, labels: torch.Tensor, shares: torch.Tensor
) -> torch.Tensor:
    """(N, V) target: exp(share) on the label, 1 − exp(share) spread over the other tokens in
    proportion to the detached softmax(logits) restricted to them. Rows sum to 1; no gradient."""
    with torch.no_grad():
        masked = logits.detach().float().scatter(1, labels[:, None], float("-inf"))
        others = torch.softmax(masked, dim=-1)  # (N, V), 0 on the label
        on_label = shares.detach().float().clamp(max=0.0).exp()  # (N,)
        target = others * (1 - on_label)[:, None]
        return target.scatter(1, labels[:, None], on_label[:, None])


def soft_cross_entropy_per_token(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) −Σ_v t_v log softmax(z)_v."""
    return -(target * torch.log_softmax(logits.float(), dim=-1)).sum(-1)


def hardened(logits: torch.Tensor) -> torch.Tensor:
    """(N, V) one-hot of the student's own argmax (detached)."""
    index = logits.detach().argmax(-1, keepdim=True)
    return torch.zeros_like(logits, dtype=torch.float32).scatter(1, index, 1.0)


def warmup_weight(alpha: float, warmup: float, progress: float) -> float:
    """alpha · min(1, progress / warmup): rises linearly, then stays (no jump)."""
    if warmup <= 0:
        return alpha
    return alpha * min(1.0, max(0.0, progress) / warmup)
