"""The classification training loop (weak supervisor, ceiling and students; every mode).

One optimizer step per batch. With gradient accumulation the batch is cut into micro-batches; a
method that needs batch-level statistics (logconf's balance-keeping threshold) gets them from one
no-grad, eval-mode pass over the whole batch first, so neither accumulation nor dropout changes
what it computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm

from weaklift import distributed
from weaklift.methods.base import Method
from weaklift.methods.logconf import confidence_weight
from weaklift.training.batches import Batcher, chunks, epoch_batches, inference_batches


@dataclass(frozen=True)
class LoopConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    micro_batch_size: int | None = None
    select_best: bool = False  # train.select=final (the default) scores the last epoch
    seed: int = 0
    group_by_length: bool = False  # token inputs: length-grouped batches (training/batches.py)


@dataclass
class TrainHistory:
    """Per-epoch mean training loss and validation accuracy (against whatever labels val carries),
    and per optimizer step: the loss, the accuracy against the step's targets (argmax agreement)
    and the confidence weight c(t) of methods that mix in hardened student labels (else None)."""

    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = -1
    step_loss: list[float] = field(default_factory=list)
    step_target_accuracy: list[float] = field(default_factory=list)
    step_confidence_weight: list[float | None] = field(default_factory=list)


def train_classifier(
    model: nn.Module,
    data: Batcher,
    targets: np.ndarray,  # (N, K) soft targets: GT one-hot or weak probabilities
    method: Method,
    cfg: LoopConfig,
    val_data: Batcher | None = None,
    val_labels: np.ndarray | None = None,  # (M,) int: GT for weak/ceiling, weak argmax for students
    desc: str = "train",
) -> TrainHistory:
    """Train in place; with ``select_best`` restore the epoch with the best validation accuracy."""
    accelerator = distributed.accelerator()
    generator = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    module = model  # the bare model: predictions and snapshots (no DDP wrapper, no collectives)
    if not distributed.is_sharded(model):  # FSDP already synchronises a sharded model's gradients
        model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    all_targets = torch.as_tensor(targets, dtype=torch.float32)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    micro_size = cfg.micro_batch_size or cfg.batch_size
    history = TrainHistory()
    best_state, best_acc = None, -1.0
    step = 0
    bar = tqdm(total=total_steps, desc=desc, leave=False, disable=total_steps < 20)
    for epoch in range(cfg.epochs):
        model.train()
        lengths = data.lengths() if cfg.group_by_length else None
        losses = []
        for batch_rows in epoch_batches(len(data), cfg.batch_size, generator, lengths):
            progress = step / total_steps
            loss, target_accuracy = _optimizer_step(
                model,
                module,
                optimizer,
                accelerator,
                data,
                all_targets,
                batch_rows,
                micro_size,
                method,
                progress,
                device,
            )
            losses.append(loss)
            history.step_loss.append(round(loss, 6))
            history.step_target_accuracy.append(round(target_accuracy, 6))
            history.step_confidence_weight.append(confidence_weight_at(method, progress))
            step += 1
            bar.update(1)
        history.train_loss.append(float(np.mean(losses)))
        if val_data is not None and val_labels is not None:
            acc = float(np.mean(predict_proba(module, val_data, method).argmax(1) == val_labels))
            history.val_accuracy.append(acc)
            if cfg.select_best and acc > best_acc:
                best_acc, history.best_epoch = acc, epoch
                best_state = {  # one clone of what trains (never of the frozen base)
                    n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad
                }
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state, strict=False)
    else:
        history.best_epoch = cfg.epochs - 1
    return history


def _optimizer_step(
    model: nn.Module,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    accelerator: Accelerator,
    data: Batcher,
    all_targets: torch.Tensor,
    batch_rows: np.ndarray,
    micro_size: int,
    method: Method,
    progress: float,
    device: torch.device,
) -> tuple[float, float]:
    """One optimizer step over ``batch_rows``, accumulating gradients over micro-batches.

    Under several processes each takes its share of the batch and DDP averages the gradients;
    each share's loss is weighted so the average is the whole batch's mean, as in one process.
    Batch statistics come from the whole batch on every process. Returns the batch loss and the
    fraction of rows whose argmax matches the targets' argmax.
    """
    weak = all_targets[torch.as_tensor(batch_rows)].to(device)  # (B, K) or (B, M, K)
    target_class = (weak.mean(dim=1) if weak.dim() == 3 else weak).argmax(dim=-1)  # (B,)
    context = None
    if method.needs_batch_context:  # (B, ...) over the whole optimizer batch
        whole = chunks(batch_rows, micro_size)
        context = _batch_context(module, data, whole, method, weak, progress, device)
    processes = distributed.processes()
    optimizer.zero_grad()
    total, matches = 0.0, 0
    for micro in distributed.local_micro_batches(np.arange(len(batch_rows)), micro_size):
        weight = len(micro) * processes / len(batch_rows)
        if not len(micro):  # a share shorter than the others': run in step, count for nothing
            micro, weight = np.arange(1), 0.0
        logits = model(**data.batch(batch_rows[micro], device))  # (b, K)
        micro_context = None if context is None else context[micro]
        loss = method.loss(logits, weak[micro], progress, micro_context) * weight
        accelerator.backward(loss)
        total += float(loss.detach()) / processes
        if weight:
            predicted = method.probabilities(logits.detach()).argmax(dim=-1)  # (b,)
            matches += int((predicted == target_class[micro]).sum())
    optimizer.step()
    return distributed.all_sum(total), distributed.all_sum(matches) / len(batch_rows)


def confidence_weight_at(method: Method, progress: float) -> float | None:
    """c(t) of a method that mixes hardened student labels into its target (logconf), else None."""
    schedule = getattr(method, "hardening_schedule", None)
    final_and_warmup = schedule() if schedule is not None else None
    if final_and_warmup is None:
        return None
    return round(confidence_weight(progress, *final_and_warmup), 6)


@torch.no_grad()
def _batch_context(
    model: nn.Module,
    data: Batcher,
    micro_batches: list[np.ndarray],
    method: Method,
    weak: torch.Tensor,
    progress: float,
    device: torch.device,
) -> torch.Tensor | None:
    """The method's batch statistics from an eval-mode pass over every micro-batch.

    Eval mode: the hardened targets must be the student's own predictions, not a dropout sample
    of them; one pass over the whole batch: gradient accumulation changes nothing.
    """
    was_training = model.training
    model.eval()
    probs = torch.cat([method.probabilities(model(**data.batch(m, device))) for m in micro_batches])
    model.train(was_training)
    return method.batch_context(probs, weak, progress)


def predict_proba(
    model: nn.Module, data: Batcher, method: Method | None = None, batch_size: int = 64
) -> np.ndarray:
    """Class probabilities (N, K) in the data's order, as the method reads the head's outputs."""
    to_probs = (
        method.probabilities if method is not None else (lambda z: torch.softmax(z.float(), -1))
    )
    return _map_outputs(model, data, to_probs, batch_size)


def predict_uncertainty(
    model: nn.Module, data: Batcher, method: Method, batch_size: int = 64
) -> np.ndarray:
    """The method's per-example uncertainty (N,), e.g. K/S for an evidential (Dirichlet) head."""
    return _map_outputs(model, data, method.uncertainty, batch_size)


@torch.no_grad()
def _map_outputs(model: nn.Module, data: Batcher, read_out, batch_size: int) -> np.ndarray:
    """``read_out(model outputs)`` for every row, in eval mode, in the data's order (token inputs
    run longest first, so each batch pads to similar lengths)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batches = inference_batches(data.lengths(), len(data), batch_size)
    outputs = distributed.map_sharded(  # several processes: each runs its share of the batches
        batches,
        lambda rows: read_out(model(**data.batch(rows, device))).float().cpu(),
        lockstep=distributed.is_sharded(model),
    )
    model.train(was_training)
    ordered = torch.cat(outputs)
    result = torch.empty_like(ordered)
    result[torch.as_tensor(np.concatenate(batches))] = ordered  # back to the data's order
    return result.numpy()
