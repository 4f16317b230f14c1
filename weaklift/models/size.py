"""How big a model is, without loading it: sweeps order weak and strong models by parameter count.

TF-IDF counts as the smallest model (0). Zoo models carry their exact count; a local folder is
counted from its safetensors headers (a few bytes read per file, no weights loaded).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from weaklift.errors import WeakliftError
from weaklift.models.zoo import ZOO

TFIDF_SIZE = 0


def parameter_count(model: str) -> int:
    """Number of parameters of a zoo name, ``tfidf`` or a local folder of safetensors files."""
    if model == "tfidf":
        return TFIDF_SIZE
    if model in ZOO:
        return ZOO[model].num_params
    folder = Path(model).expanduser()
    files = sorted(folder.rglob("*.safetensors")) if folder.is_dir() else []
    if not files:
        raise WeakliftError(
            f"cannot tell the size of model {model!r} (no zoo entry, no local safetensors)",
            "use zoo names or local folders in the sweep, or set only_weaker: false",
        )
    return sum(_safetensors_numel(f) for f in files)


def _safetensors_numel(path: Path) -> int:
    """Sum of tensor sizes from a safetensors header: 8-byte length, then a JSON table."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")


def format_count(count: int) -> str:
    """22713728 → '22.7M'; tfidf's 0 → 'tfidf'."""
    if count == TFIDF_SIZE:
        return "tfidf"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(count)
