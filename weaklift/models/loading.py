"""Load a frozen backbone (tokenizer + base model) from a zoo name, folder, .gguf file or hub id.

Only the base ``AutoModel`` is loaded, never the LM head: features come from the last hidden
state, and Gemma-3's 262k-token head would cost more than the rest of the network. Tokenizers are
normalised to RIGHT padding with a pad token, which pooling and feature extraction rely on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig

from weaklift.errors import WeakliftError
from weaklift.models.device import compute_device, dtype_name, resolve_dtype
from weaklift.models.zoo import ZOO, cache_root, convert_gguf
from weaklift.store import file_sha256, write_json_atomic

# Model types whose base model is a causal decoder (read out at the last token).
DECODER_MODEL_TYPES = frozenset(
    {
        "llama", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text", "qwen2", "qwen2_moe", "qwen3",
        "qwen3_moe", "gpt2", "gpt_neo", "gpt_neox", "gptj", "opt", "phi", "phi3", "falcon", "bloom",
        "olmo", "olmo2", "stablelm", "starcoder2", "smollm3", "granite", "cohere", "codegen",
    }
)  # fmt: skip
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HOW_TO = "use a zoo name (weaklift models), a local folder or a .gguf file"


@dataclass
class LoadedBackbone:
    """A tokenizer and the base model that turns its ids into hidden states."""

    tokenizer: Any  # PreTrainedTokenizerBase, right-padded, with a pad token
    model: Any  # PreTrainedModel without LM head, in eval mode
    is_decoder: bool
    hidden_size: int
    name: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_backbone(model: str, dtype: str = "auto", device: str | None = None) -> LoadedBackbone:
    """Load ``model`` with its weights straight in the compute dtype ``dtype`` means on the device
    (``resolve_dtype``; no float32 copy is built first), on CUDA when available at call time
    unless ``device`` says otherwise."""
    target = torch.device(device) if device else compute_device()
    compute = resolve_dtype(dtype, target)
    source = resolve_source(model)
    config = _load_config(model, source)
    tokenizer = _load_tokenizer(model, source)
    net = _load_model(model, source, compute)
    _ensure_pad_token(tokenizer, net)
    net.to(target).eval()
    return LoadedBackbone(
        tokenizer=tokenizer,
        model=net,
        is_decoder=is_decoder_config(config),
        hidden_size=_hidden_size(config),
        name=model,
    )


def load_tokenizer(model: str) -> Any:
    """The tokenizer ``load_backbone`` would give (right padding, a pad token), no weights."""
    tokenizer = _load_tokenizer(model, resolve_source(model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = _pad_fallback(tokenizer)
    return tokenizer


def resolve_source(model: str) -> str:
    """Turn a user's model string into something ``from_pretrained`` accepts (folder or hub id)."""
    kind, where = classify_model(model)
    if kind == "zoo":
        return str(ZOO[model].resolve())
    if kind == "gguf":
        gguf_file = Path(where)
        folder = _from_pretrained(
            model, "gguf", lambda: convert_gguf(gguf_file, gguf_cache_dir(gguf_file))
        )
        return str(folder)
    return str(where)


def classify_model(model: str) -> tuple[str, Path | str]:
    """("zoo" | "gguf" | "dir" | "hub", path or id), or a WeakliftError; only looks at the disk."""
    if model in ZOO:
        ZOO[model].check_installed()
        return "zoo", model
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return "gguf", path.resolve()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise WeakliftError(
                f"folder {model} has no config.json", "point to a saved Hugging Face model folder"
            )
        return "dir", path.resolve()
    if path.exists():
        raise WeakliftError(f"{model} is a file but not a .gguf", _HOW_TO)
    if _looks_like_hub_id(model):
        return "hub", model
    raise WeakliftError(
        f"unknown model {model!r} (not a zoo name, folder, .gguf file or hub id)", _HOW_TO
    )


def gguf_cache_dir(gguf_file: Path) -> Path:
    """Cache folder of a dequantised GGUF, keyed by path, size and mtime (a changed file reconverts)."""
    return cache_root() / "gguf" / f"{gguf_file.stem}-{_gguf_key(gguf_file)}"


def model_fingerprint(model: str) -> str:
    """A cheap, stable identifier for cache keys; never loads weights. Raises like ``load_backbone``."""
    kind, where = classify_model(model)
    if kind == "zoo":
        entry = ZOO[model]
        return f"zoo:{model}:{entry.package}=={entry.version()}"
    if kind == "gguf":
        return f"gguf:{where}:{_gguf_key(Path(where))}"
    if kind == "dir":
        return f"dir:{where}:{_folder_key(Path(where))}"
    return f"hub:{where}@{hub_commit(str(where))}"


def weights_key(model: str, dtype: str) -> dict:
    """The cache-key view of loaded weights: what they are and the RESOLVED compute dtype, so a
    bfloat16 run never reads a float32 run's features, models or outputs (nor the reverse)."""
    return {"model": model_fingerprint(model), "dtype": dtype_name(resolve_dtype(dtype))}


def hub_commit(repo_id: str) -> str:
    """The commit a hub id resolves to, so a new upload on the hub never reuses stale artifacts:
    the snapshot the local Hugging Face cache holds for ``main``, else (online) the hub's answer."""
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    if not constants.HF_HUB_OFFLINE:
        from huggingface_hub import HfApi

        try:
            return HfApi().model_info(repo_id).sha
        except Exception as err:  # network, auth, missing repo: one clear line
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise WeakliftError(
                f"cannot resolve the commit of hub model {repo_id} ({first_line})", _HOW_TO
            ) from err
    raise WeakliftError(
        f"hub model {repo_id} is not in the local Hugging Face cache (offline), so its commit "
        "is unknown",
        "download it once online, or use a zoo name or a local folder",
    )


def is_decoder_config(config: PretrainedConfig) -> bool:
    """Decoders are read at their last token; encoders by a mean. Decided from the config alone."""
    if getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "is_decoder", False) or config.model_type in DECODER_MODEL_TYPES:
        return True
    architectures = getattr(config, "architectures", None) or []
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


# --- helpers -----------------------------------------------------------------------------------


def _looks_like_hub_id(model: str) -> bool:
    return bool(_HUB_ID.match(model)) and not model.startswith(".") and ".." not in model


def _gguf_key(path: Path) -> str:
    stat = path.stat()
    return _short_hash(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")


def _folder_key(folder: Path) -> str:
    """Hash the content of every file that defines the model: config, tokenizer files and every
    weight file, sharded or in subfolders (anything but hidden files and docs). Each file's hash is
    remembered per (path, size, mtime, ctime, inode), so a process reads a large folder once."""
    parts = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or _is_ignored(rel):
            continue
        stat = path.stat()
        digest = _content_hash(
            str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino
        )
        parts.append(f"{rel.as_posix()}:{digest}")
    return _short_hash("\n".join(parts))


_SHA256 = re.compile(r"[0-9a-f]{64}")
_DOC_NAMES = ("readme", "license", "licence", "notice", "changelog")


def _is_ignored(rel: Path) -> bool:
    """Files that cannot change what the model computes: hidden ones, READMEs, licences."""
    if any(part.startswith(".") for part in rel.parts):
        return True
    name = rel.name.lower()
    return name.endswith(".md") or name.startswith(_DOC_NAMES)


@functools.lru_cache(maxsize=4096)
def _content_hash(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """A file's SHA-256, remembered in this process and on disk (``cache_root()/file-hashes``),
    so a model's weights are read once, not on every run (hashing 1 GB takes ~2 s, an 8B model's
    16 GB half a minute). Any change to the file changes ctime, so the entry is only ever reused
    for the same bytes; an unreadable or corrupt entry is recomputed and rewritten."""
    entry = (
        cache_root()
        / "file-hashes"
        / f"{_short_hash(f'{path}:{size}:{mtime_ns}:{ctime_ns}:{inode}')}.json"
    )
    try:
        digest = json.loads(entry.read_text()).get("sha256", "")
    except (OSError, ValueError, AttributeError):
        digest = ""
    if isinstance(digest, str) and _SHA256.fullmatch(digest):
        return digest
    digest = file_sha256(Path(path))
    write_json_atomic(entry, {"path": path, "sha256": digest})
    return digest


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _from_pretrained(model: str, what: str, load: Any) -> Any:
    """Run a loader; hub/offline/format failures become one WeakliftError naming the model."""
    try:
        return load()
    except WeakliftError:
        raise
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeakliftError(
            f"could not load model {model} ({what}: {first_line})", _HOW_TO
        ) from err


def _load_config(model: str, source: str) -> PretrainedConfig:
    return _from_pretrained(model, "config", lambda: AutoConfig.from_pretrained(source))


def _load_tokenizer(model: str, source: str) -> Any:
    tokenizer = _from_pretrained(model, "tokenizer", lambda: AutoTokenizer.from_pretrained(source))
    tokenizer.padding_side = "right"  # pooling reads the last real token at mask.sum(1) - 1
    return tokenizer


def _load_model(model: str, source: str, dtype: torch.dtype) -> Any:
    return _from_pretrained(
        model, "weights", lambda: AutoModel.from_pretrained(source, dtype=dtype)
    )


def _ensure_pad_token(tokenizer: Any, net: Any) -> None:
    """Batches need a pad id; which one is irrelevant because padded positions are masked out."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = _pad_fallback(tokenizer)
    if getattr(net.config, "pad_token_id", None) is None:
        net.config.pad_token_id = tokenizer.pad_token_id


def _pad_fallback(tokenizer: Any) -> str:
    return tokenizer.eos_token or tokenizer.unk_token or tokenizer.convert_ids_to_tokens(0)


def _hidden_size(config: PretrainedConfig) -> int:
    for attr in ("hidden_size", "d_model", "n_embd", "dim"):
        if isinstance(getattr(config, attr, None), int):
            return getattr(config, attr)
    raise WeakliftError(f"cannot tell the hidden size of model type {config.model_type!r}", _HOW_TO)
