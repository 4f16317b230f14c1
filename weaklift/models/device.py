"""The one place that picks where models run and in which compute dtype.

Nothing here touches CUDA at import time: every answer is computed when a stage asks, so a module
that imports this one still imports on a machine without a GPU.

``auto`` means bfloat16 where the device multiplies bfloat16 fast (a CUDA GPU with bf16 support; a
CPU with AMX or AVX-512-BF16, read from ``/proc/cpuinfo`` at run time), float32 elsewhere; the
environment variable WEAKLIFT_AUTO_DTYPE (bfloat16, float16 or float32) overrides what ``auto``
means, for every process of a run (tests pin it to float32 so numbers never depend on the host). Heads,
adapters, optimizer states, losses and soft targets stay float32 whatever the compute dtype.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

from weaklift.errors import WeakliftError

DtypeName = Literal["auto", "bfloat16", "float16", "float32"]
DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}
AUTO_DTYPE_ENV = "WEAKLIFT_AUTO_DTYPE"
# CPU flags whose presence means bf16 matrix products run in hardware (AMX tiles, AVX-512 BF16).
_FAST_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def compute_device() -> torch.device:
    """CUDA when a GPU is visible at call time, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (empty where /proc/cpuinfo does not exist)."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return frozenset()
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix products faster than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & _FAST_BF16_CPU_FLAGS)


def resolve_dtype(name: str, device: torch.device | None = None) -> torch.dtype:
    """The compute dtype a model config's ``dtype`` means on ``device`` (default: compute_device).

    Raises WeakliftError for a dtype the device cannot run (float16 on a CPU; bfloat16 on a GPU
    without it), naming the field and the fix.
    """
    device = device or compute_device()
    pinned = os.environ.get(AUTO_DTYPE_ENV)
    if name == "auto" and pinned:
        if pinned not in DTYPES:
            raise WeakliftError(
                f"{AUTO_DTYPE_ENV}={pinned!r} is not a compute dtype",
                "set it to bfloat16, float16 or float32, or unset it",
            )
        return resolve_dtype(pinned, device)
    if name == "auto":
        return torch.bfloat16 if fast_bf16(device) else torch.float32
    if name not in DTYPES:
        raise WeakliftError(
            f"dtype {name!r} is not a compute dtype", "use auto, bfloat16, float16 or float32"
        )
    if name == "float16" and device.type == "cpu":
        raise WeakliftError(
            "dtype float16 needs a GPU (CPU half-precision matmuls are slow and lossy)",
            "use dtype=auto or dtype=bfloat16 on a CPU",
        )
    if name == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise WeakliftError(
            "dtype bfloat16: this GPU does not support it", "use dtype=float16 or dtype=float32"
        )
    if name == "bfloat16" and device.type == "cpu" and not fast_bf16(device):
        _warn_slow_bf16()
    return DTYPES[name]


@functools.cache
def _warn_slow_bf16() -> None:
    """Once a process: a named bfloat16 is honoured, but a CPU without bf16 matrix units emulates
    it (measured on such a CPU, an AMD EPYC without AVX-512: 1.3 GFLOP/s against float32's 128)."""
    logging.getLogger("weaklift").warning(
        "dtype bfloat16 on a CPU without bf16 matrix units (no AMX or AVX-512-BF16): matrix "
        "products run ~100x slower than in float32; use dtype=auto (float32 here)"
    )


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (what cache keys and results.json record)."""
    return str(dtype).removeprefix("torch.")


def training_attention(
    device: torch.device, dtype: torch.dtype
) -> contextlib.AbstractContextManager:
    """The attention kernel for a forward whose backward will run: SDPA's math kernel for bf16 or
    fp16 on a CPU, where its flash kernel's backward is 3-4x slower (measured: batch 4, 20 heads,
    18 tokens, forward + backward 3.4 ms flash, 1.0 ms math; in float32 flash is the faster, and
    inference keeps flash, whose forward is the faster in every dtype). Elsewhere nothing changes."""
    if device.type != "cpu" or dtype == torch.float32 or not torch.is_grad_enabled():
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


@contextlib.contextmanager
def mixed_precision(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """A forward in the compute dtype ``dtype``: autocast (float32 master weights and adapters
    multiply in bf16; a no-op in float32) and ``training_attention``'s kernel. Run the backward
    outside it."""
    with (
        torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32),
        training_attention(device, dtype),
    ):
        yield
