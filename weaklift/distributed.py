"""Several processes, one experiment (``torchrun`` / ``accelerate launch``): who does what.

Every process runs the same pipeline and asks the store for the same stages in the same order.
The main process decides hit or miss for all of them (``ArtifactStore``), every process joins a
stage's computation, and only the main process publishes it; the others wait, then read it.
Inside a stage, rows are shared round-robin (``map_sharded``: extraction, prediction, scoring,
decoding, judging) and gathered back in order on every process; training shards each optimizer
batch and synchronises gradients (accelerate's DDP; the generation loop, whose LM head runs
outside the model's forward, and generative finetuning by bucketed all-reduces; a full-mode
model with ``fsdp`` shards its weights instead, ``shard``), so a step is the one-process step.

Nothing here touches a process group until ``start()`` runs under ``WORLD_SIZE > 1``; one
process never imports ``torch.distributed`` state and pays nothing.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("weaklift")


def world_size() -> int:
    """Processes in this experiment: torchrun's / accelerate's ``WORLD_SIZE`` (1 when unset)."""
    value = os.environ.get("WORLD_SIZE", "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def rank() -> int:
    value = os.environ.get("RANK", "0")
    return int(value) if value.isdigit() else 0


def is_main() -> bool:
    """The process that writes: artifacts, run folders, reports, tracking, printed summaries."""
    return rank() == 0


def active() -> bool:
    """True when several processes share this experiment and their process group is up."""
    if world_size() == 1:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def processes() -> int:
    """Processes taking part in the collectives now: ``world_size()`` once joined, else 1."""
    return world_size() if active() else 1


def start() -> None:
    """Join the process group (gloo on CPU, NCCL on GPUs, one GPU per local rank); quiet the
    other processes' logs. A no-op in one process or when already joined."""
    if world_size() == 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if not is_main():  # (their progress bars: off from `python -m weaklift`, weaklift/__main__.py)
        logging.getLogger("weaklift").setLevel(logging.WARNING)
        logging.getLogger().setLevel(logging.ERROR)  # other libraries' warnings: the main one's
    log.info("process %d of %d joined (%s)", rank(), world_size(), dist.get_backend())


def accelerator():
    """The training loops' Accelerator: DDP under several processes. Unused parameters are
    allowed: a probe on a middle layer leaves the adapters above it without a gradient."""
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs

    unused = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[unused])


def shard(model, layers_of: Any = None) -> None:
    """FSDP (FSDP2's ``fully_shard``): each transformer block of ``layers_of`` (default: ``model``)
    and then the whole ``model`` hold 1/N of their weights, gradients and optimizer state on each
    of the N processes, gathered block by block for the forward and backward and scattered again
    after: a full model's training memory divided by N, at the cost of those all-gathers. In
    place; a no-op in one process. Gradients are averaged over processes, as DDP's are."""
    if not active():
        return
    from torch.distributed.fsdp import fully_shard

    blocks = _transformer_blocks(model if layers_of is None else layers_of)
    for block in blocks:
        fully_shard(block)
    fully_shard(model)
    log.info("sharded over %d processes (FSDP, %d blocks)", world_size(), len(blocks))


def _transformer_blocks(backbone) -> list[Any]:
    """The backbone's repeated layers (the classes transformers never splits across devices,
    ``_no_split_modules``, e.g. LlamaDecoderLayer): FSDP's natural units."""
    names = set(getattr(backbone, "_no_split_modules", None) or [])
    return [m for m in backbone.modules() if type(m).__name__ in names]


def whole(tensor):
    """A tensor's full value: an FSDP shard (a DTensor) is gathered from every process (a
    collective); any other tensor is itself."""
    full_tensor = getattr(tensor, "full_tensor", None)
    return full_tensor() if full_tensor is not None else tensor


def is_sharded(model) -> bool:
    """Whether ``model`` is FSDP-sharded: its forward is then a collective on every process."""
    if not active():
        return False
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def broadcast(value: T) -> T:
    """The main process's ``value`` on every process."""
    if not active():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def map_sharded(items: Sequence[T], fn: Callable[[T], R], lockstep: bool = False) -> list[R]:
    """``[fn(x) for x in items]`` with the items shared round-robin over the processes; every
    process gets every result, in the items' order. ``fn``'s results must pickle (CPU tensors,
    arrays, lists). ``lockstep``: every process calls ``fn`` equally often (a short share repeats
    an item and drops the result), for an ``fn`` that is itself a collective (a sharded model's
    forward gathers its weights from every process)."""
    if not active():
        return [fn(item) for item in items]
    import torch.distributed as dist

    me, world = rank(), world_size()
    mine = {i: fn(item) for i, item in enumerate(items) if i % world == me}
    if lockstep and items:
        for _ in range(math.ceil(len(items) / world) - len(mine)):
            fn(items[0])
    parts: list[dict[int, Any] | None] = [None] * world
    dist.all_gather_object(parts, mine)
    merged: dict[int, Any] = {}
    for part in parts:
        merged.update(part or {})
    return [merged[i] for i in range(len(items))]


def all_sum(value: float) -> float:
    """The sum over processes of a number (a batch's loss or match count, for logging)."""
    if not active():
        return value
    import torch
    import torch.distributed as dist

    total = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return float(total.item())


def local_micro_batches(rows: np.ndarray, micro_size: int) -> list[np.ndarray]:
    """This process's share of an optimizer batch (round-robin) in micro-batches of at most
    ``micro_size``, as many on every process: DDP all-reduces at each backward, so all must run
    the same number. A share too short for that count gets empty micro-batches, which the loop
    runs as a zero-weight forward. In one process: ``chunks(rows, micro_size)``."""
    from weaklift.training.batches import chunks

    if not active():
        return chunks(rows, micro_size)
    world = processes()
    count = math.ceil(math.ceil(len(rows) / world) / micro_size)
    mine = chunks(rows[rank() :: world], micro_size)
    return mine + [rows[:0]] * (count - len(mine))


GRADIENT_BUCKET = 2**25  # elements per all-reduce: 128 MB of float32, whatever the model's size


def sum_gradients(params) -> None:
    """Sum every parameter's gradient over the processes, in flat all-reduces of at most
    ``GRADIENT_BUCKET`` elements (a whole 8B model's gradients in one float32 buffer would add
    32 GB): for a loop that runs part of the model outside its forward, where DDP cannot hook
    in. Each process's loss must already be its share of the batch's total."""
    if not active():
        return
    import torch

    params = [p for p in params]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket, size = [], 0
    for p in params:
        if bucket and size + p.numel() > GRADIENT_BUCKET:
            _all_reduce_grads(bucket)
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        _all_reduce_grads(bucket)


def _all_reduce_grads(params: list) -> None:
    import torch
    import torch.distributed as dist

    flat = torch.cat([p.grad.reshape(-1).float() for p in params]).to(_collective_device())
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad).to(p.grad.device, p.grad.dtype))
        offset += n


def _collective_device():
    """Where tensors handed to a collective must live: NCCL reduces on the GPU, gloo on the CPU."""
    import torch
    import torch.distributed as dist

    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
