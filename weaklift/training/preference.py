"""The preference-optimisation loop (DPO, cDPO, IPO) for a causal LM, LoRA or full.

One optimizer step per batch of pairs; micro-batches accumulate gradients; as TRL's DPOTrainer,
the gradient norm is clipped to ``max_grad_norm`` (1) and the learning rate decays linearly to 0
over the run. For every micro-batch the chosen and rejected sequences go through the policy in ONE
forward pass (2b rows), and through the frozen reference in another, without gradients. The
reference is the starting policy: with LoRA the same network with its adapters switched off (peft
``disable_adapter``, no copy), with full finetuning a frozen model the caller loads (the start,
from disk). Its log-probs always come from a forward pass over the same tokens, never from stored
decoding scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from weaklift import distributed
from weaklift.errors import WeakliftError
from weaklift.methods.dpo import PairLogps, PreferenceLoss, implicit_rewards
from weaklift.models.device import mixed_precision
from weaklift.models.lm import response_logprobs
from weaklift.training.batches import chunks, epoch_batches


@dataclass(frozen=True)
class TokenizedPairs:
    """Token ids of N pairs: the prompt, the chosen and the rejected response (see tokenize_responses)."""

    prompt_ids: list[list[int]]
    chosen_ids: list[list[int]]
    rejected_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def lengths(self) -> np.ndarray:
        """Per pair: prompt + its longer response, the width its batch pads to."""
        return np.array(
            [len(p) + max(len(c), len(r)) for p, c, r in
             zip(self.prompt_ids, self.chosen_ids, self.rejected_ids, strict=True)]
        )  # fmt: skip


@dataclass(frozen=True)
class PreferenceLoopConfig:
    epochs: int
    batch_size: int
    lr: float
    micro_batch_size: int | None = None
    weight_decay: float = 0.0
    seed: int = 0
    max_grad_norm: float | None = 1.0  # TRL's default; None = no clipping
    group_by_length: bool = False


@dataclass
class PreferenceHistory:
    """Per optimizer step: loss, mean implicit-reward margin β·h, the share of pairs with h > 0,
    the gradient norm before clipping and the learning rate the step used."""

    loss: list[float] = field(default_factory=list)
    reward_margin: list[float] = field(default_factory=list)
    reward_accuracy: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)


class PolicyWithReference:
    """The causal LM being optimised and its frozen starting point (the reference model)."""

    def __init__(
        self,
        model: torch.nn.Module,
        pad_id: int,
        reference: torch.nn.Module | None = None,
        compute_dtype: torch.dtype = torch.float32,
    ):
        """``reference`` defaults, for a LoRA policy, to the same network with its adapters off;
        a full policy needs one (the start loaded again): nothing here copies a model. Forwards
        run in ``compute_dtype`` (``mixed_precision``: a full policy's float32 master weights
        multiply in bf16)."""
        self.model, self.pad_id, self.compute_dtype = model, pad_id, compute_dtype
        self.forward_model = model  # accelerate may wrap it for the policy's forward
        self.is_lora = hasattr(model, "disable_adapter") and reference is None
        if reference is None and not self.is_lora:
            raise WeakliftError(
                "a full-finetuning policy needs its reference model",
                "pass the starting model, loaded once more and frozen, as reference",
            )
        self.frozen = None if reference is None else reference.eval().requires_grad_(False)

    def logprobs(self, prompts: list[list[int]], responses: list[list[int]]):
        """Policy: summed response log-probs (B,) with gradients, and token counts (B,)."""
        return response_logprobs(self.forward_model, prompts, responses, self.pad_id)

    @torch.no_grad()
    def reference_logprobs(self, prompts: list[list[int]], responses: list[list[int]]):
        """Reference: the same quantity under the starting weights, no gradients."""
        if self.frozen is not None:
            return response_logprobs(self.frozen, prompts, responses, self.pad_id)
        was_training = self.model.training
        self.model.eval()
        with self.model.disable_adapter():
            out = response_logprobs(self.model, prompts, responses, self.pad_id)
        self.model.train(was_training)
        return out

    def pair_logps(self, pairs: TokenizedPairs, rows: np.ndarray) -> PairLogps:
        """Policy and reference log-probs of the pairs ``rows``: one forward each over 2b rows."""
        prompts = [pairs.prompt_ids[i] for i in rows]
        responses = [pairs.chosen_ids[i] for i in rows] + [pairs.rejected_ids[i] for i in rows]
        with mixed_precision(next(self.model.parameters()).device, self.compute_dtype):
            policy, tokens = self.logprobs(prompts + prompts, responses)  # (2b,) chosen, rejected
            reference, _ = self.reference_logprobs(prompts + prompts, responses)
        b = len(rows)
        return PairLogps(
            policy_chosen=policy[:b],
            policy_rejected=policy[b:],
            reference_chosen=reference[:b],
            reference_rejected=reference[b:],
            chosen_tokens=tokens[:b],
            rejected_tokens=tokens[b:],
        )


def train_preference(
    policy: PolicyWithReference,
    pairs: TokenizedPairs,
    loss_fn: PreferenceLoss,
    cfg: PreferenceLoopConfig,
    desc: str = "preference",
    shard: bool = False,
) -> PreferenceHistory:
    """Optimise ``policy.model`` in place on ``pairs`` (every pair: chosen ≻ rejected).
    Several processes: DDP, or with ``shard`` FSDP over the policy's blocks (each process holds
    1/N of its weights, gradients and optimizer state; the reference stays whole and frozen)."""
    accelerator = distributed.accelerator()
    generator = torch.Generator().manual_seed(cfg.seed)
    if shard:
        distributed.shard(policy.model)
    params = [p for p in policy.model.parameters() if p.requires_grad]  # after sharding: shards
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    micro_size = cfg.micro_batch_size or cfg.batch_size
    total_steps = cfg.epochs * math.ceil(len(pairs) / cfg.batch_size)
    schedule = linear_decay(optimizer, total_steps)  # steps once per optimizer step, not prepared
    if not distributed.is_sharded(policy.model):  # FSDP synchronises a sharded one's gradients
        policy.forward_model, optimizer = accelerator.prepare(policy.model, optimizer)
    history = PreferenceHistory()
    lengths = pairs.lengths() if cfg.group_by_length else None
    policy.model.train()
    with tqdm(total=total_steps, desc=desc, leave=False) as bar:
        for _ in range(cfg.epochs):
            for batch_rows in epoch_batches(len(pairs), cfg.batch_size, generator, lengths):
                step = _optimizer_step(
                    policy, pairs, batch_rows, micro_size, loss_fn, optimizer, accelerator,
                    schedule, cfg.max_grad_norm,
                )  # fmt: skip
                for name, value in step.items():
                    getattr(history, name).append(value)
                bar.set_postfix(loss=f"{step['loss']:.3f}", acc=f"{step['reward_accuracy']:.2f}")
                bar.update(1)
    policy.model.eval()
    return history


def linear_decay(optimizer: torch.optim.Optimizer, total_steps: int):
    """The learning rate from its configured value down to 0 after the last of ``total_steps``
    (TRL's default ``lr_scheduler_type="linear"``, no warm-up)."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, 0, max(total_steps, 1))


def _optimizer_step(
    policy: PolicyWithReference,
    pairs: TokenizedPairs,
    batch_rows: np.ndarray,
    micro_size: int,
    loss_fn: PreferenceLoss,
    optimizer: torch.optim.Optimizer,
    accelerator: Accelerator,
    schedule=None,
    max_grad_norm: float | None = None,
) -> dict[str, float]:
    """Mean loss over the batch, accumulated micro-batch by micro-batch; the gradient clipped to
    ``max_grad_norm``; one step of the optimizer and of ``schedule``; returns the step metrics."""
    optimizer.zero_grad()
    processes = distributed.processes()
    total, margin_sum, right = 0.0, 0.0, 0
    for micro in distributed.local_micro_batches(batch_rows, micro_size):
        scale = processes  # DDP averages over processes: each share sums its pairs
        if not len(micro):  # a share shorter than the others': run in step, count for nothing
            micro, scale = batch_rows[:1], 0.0
        logps = policy.pair_logps(pairs, micro)
        loss = scale * loss_fn(logps).sum() / len(batch_rows)  # sums to the batch mean
        accelerator.backward(loss)
        total += float(loss.detach()) / processes
        if scale:
            chosen, rejected = implicit_rewards(logps, loss_fn.beta)
            margin = (chosen - rejected).detach().float()
            margin_sum, right = margin_sum + float(margin.sum()), right + int((margin > 0).sum())
    lr = float(optimizer.param_groups[0]["lr"])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if distributed.is_sharded(policy.model):  # shards' gradients: torch's norm is the whole one
        norm = torch.nn.utils.clip_grad_norm_(
            params, math.inf if max_grad_norm is None else max_grad_norm
        )
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    elif max_grad_norm is not None:
        norm = accelerator.clip_grad_norm_(params, max_grad_norm)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    optimizer.step()
    if schedule is not None:
        schedule.step()
    return {
        "loss": distributed.all_sum(total),
        "reward_margin": distributed.all_sum(margin_sum) / len(batch_rows),
        "reward_accuracy": distributed.all_sum(right) / len(batch_rows),
        "grad_norm": float(norm),
        "lr": lr,
    }


@torch.no_grad()
def score_pairs(
    model: torch.nn.Module, pairs: TokenizedPairs, pad_id: int, batch_size: int = 8
) -> dict[str, np.ndarray]:
    """Summed response log-probs and token counts of every pair under ``model``, (N,) each."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {
        "chosen": [],
        "rejected": [],
        "chosen_tokens": [],
        "rejected_tokens": [],
    }
    batches = chunks(np.arange(len(pairs)), batch_size)
    bar = tqdm(total=len(batches), desc="scoring pairs", leave=False)

    def score(batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = [pairs.prompt_ids[i] for i in batch]
        responses = [pairs.chosen_ids[i] for i in batch] + [pairs.rejected_ids[i] for i in batch]
        logps, tokens = response_logprobs(model, prompts + prompts, responses, pad_id)
        bar.update(distributed.processes())
        return logps.cpu(), tokens.cpu()

    with bar:  # several processes: each scores its share of the batches
        scored = distributed.map_sharded(batches, score)
    for batch, (logps, tokens) in zip(batches, scored, strict=True):
        b = len(batch)
        parts["chosen"].append(logps[:b])
        parts["rejected"].append(logps[b:])
        parts["chosen_tokens"].append(tokens[:b])
        parts["rejected_tokens"].append(tokens[b:])
    model.train(was_training)
    return {name: torch.cat(values).numpy() for name, values in parts.items()}
