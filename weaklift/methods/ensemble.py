"""Pure tensor functions for an ensemble of M weak supervisors (Cui et al. 2024).

Member probabilities are ``(B, M, K)``: example, weak member, class. Everything here is
stateless; weak labels are constants, so none of it needs gradients except the per-example soft
cross-entropy. multi_naive.py, joint.py and bayes.py build their targets and weights from these.

Batch-level statistics (member confidences, the mean used to normalise example weights) must be
computed over the whole optimizer batch so that gradient accumulation changes nothing; methods
carry them to each micro-batch in a per-example context tensor built by ``pack_batch_stats``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from weaklift.methods.base import BaseMethod, MethodOptions
from weaklift.methods.logconf import HARDENING_VERSION, confidence_weight, harden_balanced

Combine = Literal["mean", "vote", "logpool"]
Weighting = Literal["none", "entropy", "dirichlet"]

LOG_CLAMP = 1e-12  # floor on probabilities before a log: a member's hard 0 must not give −inf
MAX_PRECISION = 1e4  # Dirichlet precision assigned to full agreement (zero variance)
MIN_PRECISION = 1e-6  # keeps s > 0 when one-hot members disagree completely
VOTE_TIE_TOL = 1e-6  # weighted vote totals closer than this count as a tie
ENSEMBLE_VERSION = 1  # bump when a target or weight here changes: ensemble students retrain


def member_confidence(member_probs: torch.Tensor) -> torch.Tensor:
    """Each member's mean max-probability over the batch, (M,): how sure it is, on average."""
    return member_probs.float().amax(dim=-1).mean(dim=0)  # (B, M, K) -> (B, M) -> (M,)


def confidence_member_weights(member_probs: torch.Tensor) -> torch.Tensor:
    """Member weights (M,) proportional to confidence, summing to 1 (the log pool's default)."""
    conf = member_confidence(member_probs)  # (M,)
    return conf / conf.sum()


def dynamic_member_weights(
    member_accuracy: torch.Tensor | list[float], temperature: float = 1.0
) -> torch.Tensor:
    """Softmax over members of accuracy / temperature, (M,): members that are right on weak-side
    held-out data (weak_holdout) count more; a confident but wrong member gains nothing."""
    accuracy = torch.as_tensor(member_accuracy, dtype=torch.float32)  # (M,)
    return torch.softmax(accuracy / temperature, dim=0)


def normalise_weights(weights: torch.Tensor | list[float] | tuple[float, ...]) -> torch.Tensor:
    """Non-negative member weights (M,) rescaled to sum 1."""
    w = torch.as_tensor(weights, dtype=torch.float32)
    return w / w.sum()


def default_member_weights(member_probs: torch.Tensor, how: Combine) -> torch.Tensor:
    """A rule's default member weights (M,): confidence-proportional for logpool, else uniform.

    With a log pool, an unsure member flattens the target less than a sure one sharpens it.
    """
    if how == "logpool":
        return confidence_member_weights(member_probs)
    num_members = member_probs.shape[1]
    return torch.full((num_members,), 1.0 / num_members, device=member_probs.device)


def combine_mean(member_probs: torch.Tensor, member_weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean probability, (B, K)."""
    return torch.einsum("bmk,m->bk", member_probs.float(), member_weights)


def combine_vote(member_probs: torch.Tensor, member_weights: torch.Tensor) -> torch.Tensor:
    """One-hot of the (weighted) most-voted class, (B, K); tied classes share the mass evenly."""
    num_classes = member_probs.shape[-1]
    choices = member_probs.argmax(dim=-1)  # (B, M) each member's class
    ballots = torch.nn.functional.one_hot(choices, num_classes).float()  # (B, M, K)
    votes = torch.einsum("bmk,m->bk", ballots, member_weights)  # (B, K)
    winners = (votes >= votes.amax(dim=-1, keepdim=True) - VOTE_TIE_TOL).float()  # (B, K)
    return winners / winners.sum(dim=-1, keepdim=True)


def combine_logpool(member_probs: torch.Tensor, member_weights: torch.Tensor) -> torch.Tensor:
    """Log-opinion pool p ∝ Π_m p_m^{w_m}, (B, K), computed in log space with clamping."""
    log_probs = torch.log(member_probs.float().clamp_min(LOG_CLAMP))  # (B, M, K)
    return torch.softmax(torch.einsum("bmk,m->bk", log_probs, member_weights), dim=-1)


def combine(
    member_probs: torch.Tensor,  # (B, M, K)
    how: Combine = "mean",
    member_weights: torch.Tensor | None = None,  # (M,) summing to 1, or None for the default
) -> torch.Tensor:
    """One target distribution (B, K) from the ensemble; weights default per rule (see above)."""
    if member_weights is None:
        member_weights = default_member_weights(member_probs, how)
    member_weights = member_weights.to(member_probs.device, torch.float32)
    if how == "mean":
        return combine_mean(member_probs, member_weights)
    if how == "vote":
        return combine_vote(member_probs, member_weights)
    if how == "logpool":
        return combine_logpool(member_probs, member_weights)
    raise ValueError(f"combine: unknown rule {how!r}; choose mean, vote or logpool")


def dirichlet_precision(member_probs: torch.Tensor) -> torch.Tensor:
    """Method-of-moments Dirichlet precision s per example, (B,), from the M member vectors.

    For p ~ Dir(s·μ), Var p_k = μ_k(1 − μ_k)/(s + 1). We pool over classes,
    s + 1 = Σ_k μ_k(1 − μ_k) / Σ_k v_k, which equals the per-class estimate for K = 2 and,
    for K > 2, is not dominated by classes that no member supports (their v_k ≈ 0 would send a
    per-class ratio to infinity). Zero total variance (full agreement) gives MAX_PRECISION.
    """
    probs = member_probs.float()  # (B, M, K)
    mu = probs.mean(dim=1)  # (B, K)
    var = probs.var(dim=1, unbiased=False)  # (B, K) spread across members
    spread = (mu * (1 - mu)).sum(dim=-1)  # (B,) = 1 − Σ μ_k²
    total_var = var.sum(dim=-1)  # (B,)
    agree = total_var <= 1e-12
    s = spread / total_var.clamp_min(1e-12) - 1
    s = torch.where(agree, torch.full_like(s, MAX_PRECISION), s)
    return s.clamp(MIN_PRECISION, MAX_PRECISION)


def dirichlet_uncertainty(member_probs: torch.Tensor) -> torch.Tensor:
    """Subjective-logic uncertainty u = K / (s + K) of the fitted Dirichlet, (B,), in (0, 1)."""
    num_classes = member_probs.shape[-1]
    return num_classes / (dirichlet_precision(member_probs) + num_classes)


def entropy_confidence(member_probs: torch.Tensor) -> torch.Tensor:
    """1 − H(mean_m p_m) / log K, (B,): 1 when the ensemble is sure, 0 when its mean is uniform."""
    mean = member_probs.float().mean(dim=1)  # (B, K)
    entropy = -(mean * torch.log(mean.clamp_min(LOG_CLAMP))).sum(dim=-1)  # (B,)
    return 1 - entropy / math.log(member_probs.shape[-1])


def _mean_one(raw: torch.Tensor) -> torch.Tensor:
    """Rescale to mean 1 over the batch; an all-zero batch (no confidence anywhere) gets ones."""
    mean = raw.mean()
    return torch.where(mean > 1e-12, raw / mean.clamp_min(1e-12), torch.ones_like(raw))


def example_weights(member_probs: torch.Tensor, how: Weighting = "none") -> torch.Tensor:
    """Per-example weights (B,), mean 1 over the batch: examples the members agree on count more."""
    batch = member_probs.shape[0]
    if how == "none":
        return torch.ones(batch, device=member_probs.device)
    if how == "entropy":
        return _mean_one(entropy_confidence(member_probs))
    if how == "dirichlet":
        return _mean_one(1 - dirichlet_uncertainty(member_probs))
    raise ValueError(f"weighting: unknown rule {how!r}; choose none, entropy or dirichlet")


def per_example_soft_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−Σ_k t_k log softmax(z)_k per example, (b,), so example weights can scale each term."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1)


def pack_batch_stats(
    example_w: torch.Tensor,  # (B,)
    member_w: torch.Tensor,  # (M,)
    hardened: torch.Tensor | None = None,  # (B, K) balance-keeping hardened student labels
) -> torch.Tensor:
    """A per-example context (B, 1 + M [+ K]) the training loop can slice along dim 0."""
    batch = example_w.shape[0]
    columns = [example_w[:, None].float(), member_w.float()[None, :].expand(batch, -1)]
    if hardened is not None:
        columns.append(hardened.float())
    return torch.cat(columns, dim=1)


def unpack_batch_stats(
    context: torch.Tensor, num_members: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Inverse of ``pack_batch_stats`` on a slice: example weights (b,), member weights (M,), h."""
    example_w = context[:, 0]  # (b,)
    member_w = context[0, 1 : 1 + num_members]  # (M,), identical on every row
    hardened = context[:, 1 + num_members :] if context.shape[1] > 1 + num_members else None
    return example_w, member_w, hardened


def check_members(weak_probs: torch.Tensor, method: str) -> None:
    """Multi-weak methods need (b, M, K) member probabilities; say so plainly otherwise."""
    if weak_probs.ndim != 3:
        raise ValueError(
            f"{method}: expects weak probabilities of shape (batch, members, classes), got "
            f"{tuple(weak_probs.shape)}; configure weak as a list of models"
        )


class MultiWeakMethod(BaseMethod):
    """Base of the ensemble methods: the batch statistics (member weights, example weights,
    optionally hardened labels) are packed into one (B, 1 + M [+ K]) context tensor that the loop
    computes over the whole optimizer batch and slices per micro-batch."""

    multi_weak = True
    shared_versions = {"ensemble": ENSEMBLE_VERSION}

    def _batch_stats(self, student_probs: torch.Tensor, member_probs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def batch_context(
        self, student_probs: torch.Tensor, weak_probs: torch.Tensor, progress: float
    ) -> torch.Tensor | None:
        if not self.needs_batch_context:
            return None
        check_members(weak_probs, self.name)
        return self._batch_stats(student_probs, weak_probs)

    def unpack_context(
        self, logits: torch.Tensor, weak_probs: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(example weights (b,), member weights (M,), hardened (b, K) or None) for a micro-batch."""
        check_members(weak_probs, self.name)
        if context is None:  # the micro-batch is the batch
            context = self._batch_stats(self.probabilities(logits.detach()), weak_probs)
        return unpack_batch_stats(context, weak_probs.shape[1])


class EnsembleTargetMethod(MultiWeakMethod):
    """Shared by ``joint`` and ``bayes``: one target y = combine(members), optionally mixed with the
    student's balance-keeping hardened labels, and per-example agreement weights.

    Subclasses say which options drive the mix through ``hardening_schedule``; the batch
    statistics (member weights, example weights, hardened labels) are computed over the whole
    optimizer batch.
    """

    shared_versions = {"ensemble": ENSEMBLE_VERSION, "hardening": HARDENING_VERSION}

    def __init__(self, options: MethodOptions | None = None):
        super().__init__(options)
        o = self.options
        # hardening, the log pool's confidences and the example-weight mean are batch statistics
        self.needs_batch_context = (
            self.hardening_schedule() is not None or o.combine == "logpool" or o.weighting != "none"
        )

    def hardening_schedule(self) -> tuple[float, float] | None:
        """(final weight, warm-up fraction) of the hardened student labels, or None when off."""
        raise NotImplementedError

    def _batch_stats(self, student_probs: torch.Tensor, member_probs: torch.Tensor) -> torch.Tensor:
        member_w = default_member_weights(member_probs, self.options.combine)  # (M,)
        ex_w = example_weights(member_probs, self.options.weighting)  # (B,)
        hardened = None
        if self.hardening_schedule() is not None:
            target = combine(member_probs, self.options.combine, member_w)  # (B, K)
            hardened = harden_balanced(student_probs.detach().float(), target)  # (B, K)
        return pack_batch_stats(ex_w, member_w, hardened)  # (B, 1 + M [+ K])

    def target(
        self,
        member_probs: torch.Tensor,
        member_w: torch.Tensor,
        hardened: torch.Tensor | None,
        progress: float,
    ) -> torch.Tensor:
        """Training target (b, K): the combined ensemble, mixed with hardened labels when on."""
        y = combine(member_probs, self.options.combine, member_w)  # (b, K)
        schedule = self.hardening_schedule()
        if hardened is None or schedule is None:
            return y
        c = confidence_weight(progress, *schedule)
        return (1 - c) * y + c * hardened
