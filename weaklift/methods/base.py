"""The protocol every weak-to-strong method implements.

A method turns the student's logits and the weak supervisor's soft labels into a scalar loss.
Every method carries a ``version`` (and the versions of shared code it calls, such as logconf's
hardening) that enters the cache key of every model trained with it: editing a loss and bumping its
version retrains exactly the students that use it.

Methods whose targets depend on statistics of the whole optimizer batch (``needs_batch_context``)
get them from ``batch_context``, which the training loop computes once per optimizer batch from
the detached student probabilities of every micro-batch, so gradient accumulation changes nothing.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict


class MethodOptions(BaseModel):
    """Base for a method's own options block; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Method(Protocol):
    name: ClassVar[str]
    paper: ClassVar[str]
    version: ClassVar[int]  # bump when the loss changes: every student trained with it retrains
    shared_versions: ClassVar[dict[str, int]]  # versions of shared code the loss relies on
    Options: ClassVar[type[MethodOptions]]
    needs_batch_context: ClassVar[bool]
    multi_weak: ClassVar[bool]  # True: weak_probs is (b, M, K), one row per weak member
    pairwise: ClassVar[
        bool
    ]  # False: no Bradley–Terry form; validate rejects it on preference tasks

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, K) from the head's outputs (softmax, or a Dirichlet mean)."""
        ...

    def __init__(self, options: MethodOptions) -> None: ...

    def batch_context(
        self, student_probs: torch.Tensor, weak_probs: torch.Tensor, progress: float
    ) -> torch.Tensor | None:
        """Per-example tensor (B, ...) computed over the whole optimizer batch, or None."""
        ...

    def loss(
        self,
        logits: torch.Tensor,  # (b, K) student logits for one micro-batch
        weak_probs: torch.Tensor,  # (b, K) weak soft labels
        progress: float,  # fraction of training done, in [0, 1]
        context: torch.Tensor | None,  # (b, ...) slice of batch_context, or None
    ) -> torch.Tensor:
        """Mean loss over the micro-batch."""
        ...


class BaseMethod:
    """Defaults for the protocol: softmax outputs, one weak label per example, no batch context."""

    needs_batch_context: ClassVar[bool] = False
    multi_weak: ClassVar[bool] = False
    pairwise: ClassVar[bool] = True  # a loss of softmax(z) depends on pair logits via r(a) − r(b)
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    version: ClassVar[int] = 1
    shared_versions: ClassVar[dict[str, int]] = {}

    def __init__(self, options: MethodOptions | None = None):
        self.options = options or self.Options()

    def batch_context(
        self, student_probs: torch.Tensor, weak_probs: torch.Tensor, progress: float
    ) -> torch.Tensor | None:
        return None

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over examples of −Σ_k t_k log softmax(z)_k; targets are probability vectors."""
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()
