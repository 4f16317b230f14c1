"""The generation training loop: teacher forcing on (prompt, target) with token-level targets.

Used for weak generators and the ceiling (ground truth: every word certain, so every method's
target is the one-hot label) and for students (weak outputs with word log-probs). One optimizer step
per batch; micro-batches accumulate gradients, and each token's loss is divided by the whole
batch's token count, so accumulation changes nothing. Under several processes each takes its
share of a batch and the gradients are summed (bucketed all-reduces; with ``shard``, FSDP's
reduce-scatter of losses scaled by N). Multi-weak methods see every member's output for a
prompt, one forward pass per member, weighted by ``member_weights``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from weaklift import distributed
from weaklift.methods.generation import GenMethod, TokenTargets, token_shares
from weaklift.methods.generation.base import ShareMode
from weaklift.models.causal_lm import TargetLogits
from weaklift.models.device import mixed_precision
from weaklift.training.batches import epoch_batches


@dataclass(frozen=True)
class TargetSequence:
    """One training sequence: prompt ids, target ids, each target token's word, word log-probs."""

    prompt_ids: list[int]
    target_ids: list[int]
    word_index: list[int]  # (T,) into word_logprobs
    word_logprobs: list[float]  # (W,)


@dataclass(frozen=True)
class GenLoopConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    micro_batch_size: int | None = None
    seed: int = 0
    share: ShareMode = "even"
    group_by_length: bool = False


@dataclass
class GenHistory:
    train_loss: list[float] = field(default_factory=list)  # per epoch, mean per token


def train_generator(
    model: torch.nn.Module,
    examples: list[
        list[TargetSequence]
    ],  # per prompt: one TargetSequence per weak member (1 unless multi)
    method: GenMethod,
    cfg: GenLoopConfig,
    pad_id: int,
    desc: str = "train",
    compute_dtype: torch.dtype = torch.float32,
    shard: bool = False,
) -> GenHistory:
    """Train in place (LoRA adapters or all weights, whichever require grad), each forward in
    ``compute_dtype`` (``mixed_precision``: float32 master weights multiply in bf16). ``shard``:
    under several processes, FSDP over the model's blocks (each process holds 1/N of the
    weights, gradients and optimizer state); the caller gathers them back (``whole_state``)."""
    forward = TargetLogits(model)
    if shard:
        distributed.shard(forward, layers_of=model)
    params = [p for p in model.parameters() if p.requires_grad]  # after sharding: the shards
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    micro = cfg.micro_batch_size or cfg.batch_size
    history, step = GenHistory(), 0
    lengths = _lengths(examples) if cfg.group_by_length else None
    bar = tqdm(total=total_steps, desc=desc, leave=False)
    for _ in range(cfg.epochs):
        model.train()
        epoch_loss, epoch_tokens = 0.0, 0
        for rows in epoch_batches(len(examples), cfg.batch_size, generator, lengths):
            progress = step / total_steps
            batch = [examples[i] for i in rows]
            loss, tokens = _optimizer_step(
                forward, optimizer, batch, method, cfg, micro, pad_id, progress, compute_dtype
            )
            epoch_loss, epoch_tokens = epoch_loss + loss * tokens, epoch_tokens + tokens
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
        history.train_loss.append(epoch_loss / max(epoch_tokens, 1))
    bar.close()
    model.eval()
    if not all(math.isfinite(x) for x in history.train_loss):
        from weaklift.errors import WeakliftError

        raise WeakliftError(
            f"{desc}: training diverged (loss {history.train_loss})", "lower the lr"
        )
    return history


def _lengths(examples: list[list[TargetSequence]]) -> np.ndarray:
    """Per prompt: the longest prompt + target among its members' sequences (its padded width)."""
    return np.array([max(len(s.prompt_ids) + len(s.target_ids) for s in ex) for ex in examples])


def _optimizer_step(
    forward: TargetLogits,
    optimizer,
    batch: list[list[TargetSequence]],
    method,
    cfg,
    micro,
    pad_id,
    progress,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[float, int]:
    """One optimizer step over ``batch``; returns (mean loss per token, tokens). Under several
    processes each runs its share of the prompts and the gradients are summed over processes
    (the LM head runs on target positions only, outside the model's forward, so no DDP
    wrapper); token counts and member weights are the whole batch's: the one-process step. A
    sharded model's forward is a collective: a share with fewer micro-batches runs a row of the
    batch that counts for nothing, so every process runs as many."""
    sharded = distributed.is_sharded(forward)
    scale = distributed.processes() if sharded else 1  # FSDP averages the processes' gradients
    members = len(batch[0])
    weights = _member_weights(method, batch) if method.multi_weak else torch.ones(1)
    counts = [sum(len(ex[m].target_ids) for ex in batch) for m in range(members)]
    total = 0.0
    for m in range(members):
        for rows in distributed.local_micro_batches(np.arange(len(batch)), micro):
            weight = float(weights[m]) * scale
            if not len(rows):
                if not sharded:
                    continue
                rows, weight = np.arange(1), 0.0
            chunk = [batch[i][m] for i in rows]
            with mixed_precision(forward.model.device, compute_dtype):
                per_token = _token_losses(forward, chunk, method, cfg.share, pad_id, progress)
                loss = weight * per_token.sum() / max(counts[m], 1)
            loss.backward()
            total += loss.item() / scale
    if not sharded:  # FSDP reduced the gradients in the backward
        distributed.sum_gradients(p for p in forward.parameters() if p.requires_grad)
    optimizer.step()
    optimizer.zero_grad()
    return distributed.all_sum(total), sum(counts) // members


def _member_weights(method, batch: list[list[TargetSequence]]) -> torch.Tensor:
    """Each member's mean token probability over the batch (exp of mean word log-prob per token)."""
    confidence = []
    for m in range(len(batch[0])):
        logprob = sum(sum(ex[m].word_logprobs) for ex in batch)
        tokens = sum(max(len(ex[m].target_ids), 1) for ex in batch)
        confidence.append(math.exp(logprob / tokens))
    return method.member_weights(torch.tensor(confidence, dtype=torch.float32))


def _token_losses(
    forward: TargetLogits,
    chunk: list[TargetSequence],
    method,
    share: ShareMode,
    pad_id: int,
    progress: float,
) -> torch.Tensor:
    device = forward.model.device
    input_ids, mask, positions, targets = collate_sequences(chunk, pad_id)
    logits = forward(input_ids.to(device), mask.to(device), positions.to(device))
    targets = TokenTargets(*(t.to(device) for t in targets.__dict__.values()))
    shares = token_shares(targets, logits, share)
    return method.token_loss(logits, targets, shares, progress)


def collate_sequences(
    chunk: list[TargetSequence], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, TokenTargets]:
    """Right-padded prompt+target ids (B, T), mask, the (row, col) of every position whose logits
    predict a target token (N, 2), and those tokens' targets with word indices made unique."""
    rows = [ex.prompt_ids + ex.target_ids for ex in chunk]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    positions, labels, word_index, word_logprobs = [], [], [], []
    for b, (ex, ids) in enumerate(zip(chunk, rows, strict=True)):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        mask[b, : len(ids)] = 1
        p = len(ex.prompt_ids)
        positions += [(b, p - 1 + j) for j in range(len(ex.target_ids))]  # logits at t predict t+1
        labels += ex.target_ids
        word_index += [len(word_logprobs) + w for w in ex.word_index]
        word_logprobs += ex.word_logprobs
    targets = TokenTargets(
        labels=torch.tensor(labels, dtype=torch.long),
        word_index=torch.tensor(word_index, dtype=torch.long),
        word_logprob=torch.tensor(word_logprobs, dtype=torch.float32),
    )
    return input_ids, mask, torch.tensor(positions, dtype=torch.long).reshape(-1, 2), targets
