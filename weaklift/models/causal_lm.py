"""Causal LMs for generation tasks: load WITH the LM head, wrap in LoRA, save/restore, and compute
logits only at the positions a loss needs.

``loading.load_backbone`` loads the base model only (features never need the head). Generation
needs ``AutoModelForCausalLM``; the zoo folders hold base-model weights, and both zoo models tie
the head to the input embeddings, so the head is complete without extra weights. A model whose head
is untied and missing from its folder would start from random weights: that is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from weaklift import distributed
from weaklift.alignment import check_offsets
from weaklift.config import GenftConfig, ModelConfig
from weaklift.errors import WeakliftError
from weaklift.models.adapters import apply_checkpointing, quiet_peft, with_adapters
from weaklift.models.device import compute_device, resolve_dtype
from weaklift.models.loading import (
    _from_pretrained,
    is_decoder_config,
    resolve_source,
    weights_key,
)
from weaklift.store import stable_hash

log = logging.getLogger("weaklift")


@dataclass
class LoadedLM:
    """A causal LM (maybe LoRA-wrapped) and its tokenizer (pad token set; padding side per use)."""

    tokenizer: Any
    model: Any
    name: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)


def check_generator(model: str, role: str) -> None:
    """Refuse, before any work, a model that cannot generate or whose tokenizer has no offsets.

    Reads config.json and the tokenizer only (no weights).
    """
    source = resolve_source(model)
    config = _from_pretrained(model, "config", lambda: AutoConfig.from_pretrained(source))
    if not is_decoder_config(config):
        raise WeakliftError(
            f"{role} model {model} is an encoder ({config.model_type}) and cannot generate",
            "use a causal LM (decoder) for generation tasks",
        )
    tokenizer = _from_pretrained(model, "tokenizer", lambda: AutoTokenizer.from_pretrained(source))
    check_offsets(tokenizer, model)
    if tokenizer.eos_token_id is None:
        raise WeakliftError(
            f"{role} model {model}: its tokenizer has no EOS token", "use a model with an EOS token"
        )


def load_causal_lm(
    model: str, dtype: str = "auto", device: str | None = None, weights: Path | None = None
) -> LoadedLM:
    """Tokenizer + ``AutoModelForCausalLM``, its weights loaded straight into the compute dtype
    ``dtype`` means on the device (``resolve_dtype``; no float32 copy is built first).

    ``weights``: a folder of finetuned weights of ``model`` (saved without a tokenizer).
    """
    target = torch.device(device) if device else compute_device()
    compute = resolve_dtype(dtype, target)
    source = resolve_source(model)
    tokenizer = _from_pretrained(model, "tokenizer", lambda: AutoTokenizer.from_pretrained(source))
    net = _from_pretrained(
        model,
        "weights",
        lambda: AutoModelForCausalLM.from_pretrained(weights or source, dtype=compute),
    )
    _require_complete_head(net, str(weights or source), model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    net.generation_config.pad_token_id = tokenizer.pad_token_id
    net.generation_config.eos_token_id = tokenizer.eos_token_id
    net.to(target).eval()
    return LoadedLM(tokenizer=tokenizer, model=net, name=model)


@dataclass(frozen=True)
class LMSource:
    """Where a causal LM comes from: a cache key for its weights and how to load it. A model
    (``from_config``, ``from_model``), or a trained artifact, e.g. a generation student with its
    adapter merged."""

    key: str
    loader: Callable[[str | None], LoadedLM]  # the dtype to load in; None: its compute dtype
    name: str

    def load(self, dtype: str | None = None) -> LoadedLM:
        """The model in its compute dtype, or in ``dtype`` (float32 master weights to finetune)."""
        return self.loader(dtype)

    @classmethod
    def from_model(cls, model: str, dtype: str = "auto") -> LMSource:
        key = stable_hash(weights_key(model, dtype))
        return cls(
            key=key, loader=lambda wanted: load_causal_lm(model, wanted or dtype), name=model
        )

    @classmethod
    def from_config(cls, model_cfg: ModelConfig) -> LMSource:
        """A model config's causal LM in its own compute dtype (``model_cfg.dtype``)."""
        return cls.from_model(model_cfg.model, model_cfg.dtype)


def _require_complete_head(net: Any, source: str, model: str) -> None:
    head, embed = net.get_output_embeddings(), net.get_input_embeddings()
    if head is None or head.weight is embed.weight:
        return
    from safetensors import safe_open

    names: set[str] = set()
    for file in Path(source).glob("*.safetensors"):
        with safe_open(str(file), "pt") as handle:
            names.update(handle.keys())
    if names and not any(name.endswith("lm_head.weight") for name in names):
        raise WeakliftError(
            f"model {model} has an untied LM head that its folder does not hold",
            "use a folder saved with its LM head (AutoModelForCausalLM.save_pretrained)",
        )


def weights_dtype(cfg: ModelConfig | GenftConfig) -> str | None:
    """The dtype to load a causal LM in for training it: full finetuning keeps float32 master
    weights (AdamW on bf16 weights loses every update below bf16's resolution: at lr 5e-5 a
    weight of size 0.02 never moves) and multiplies in the compute dtype under autocast
    (``mixed_precision``); LoRA trains float32 adapters on the base in its compute dtype (None)."""
    return "float32" if cfg.mode == "full" else None


def add_lora(loaded: LoadedLM, cfg: ModelConfig, seed: int) -> None:
    """Wrap the model in fresh LoRA adapters (seeded, float32 whatever the base's dtype), or make
    every weight trainable (full)."""
    torch.manual_seed(seed)
    apply_checkpointing(loaded.model, cfg)
    if cfg.mode == "full":
        loaded.model.requires_grad_(True)
        return
    loaded.model = with_adapters(loaded.model, cfg.lora, task_type="CAUSAL_LM")


def save_trained(loaded: LoadedLM, folder: Path) -> None:
    """LoRA: the adapter only (a few MB); full: the whole model (an FSDP-sharded one gathered
    from every process first: a collective, so every process saves)."""
    loaded.model.save_pretrained(folder / "weights", state_dict=whole_state(loaded.model))


def whole_state(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The full state dict of an FSDP-sharded model, each shard gathered from every process
    once (tied weights stay one tensor, which save_pretrained expects); None when not sharded."""
    state = model.state_dict(keep_vars=True)  # the parameters themselves: tied ones are one
    if not any(hasattr(t, "full_tensor") for t in state.values()):
        return None
    gathered: dict[int, torch.Tensor] = {}
    for tensor in state.values():
        if id(tensor) not in gathered:
            gathered[id(tensor)] = distributed.whole(tensor).detach().cpu()
    return {name: gathered[id(tensor)] for name, tensor in state.items()}


def load_trained(model: str, cfg: ModelConfig, folder: Path, dtype: str | None = None) -> LoadedLM:
    """The base model with a saved adapter merged in (fast decoding), or the saved full model,
    in the config's compute dtype (or ``dtype``)."""
    dtype = dtype or cfg.dtype
    if cfg.mode == "full":
        return load_causal_lm(model, dtype, weights=folder / "weights")
    from peft import PeftModel

    loaded = load_causal_lm(model, dtype)
    with quiet_peft():
        peft_model = PeftModel.from_pretrained(loaded.model, str(folder / "weights"))
    loaded.model = peft_model.merge_and_unload().eval()
    return loaded


class TargetLogits(torch.nn.Module):
    """``logits_at`` as one module's forward: a sharded (FSDP) model gathers the weights outside
    its blocks (embeddings, final norm, LM head) in its root module's forward, so the loop that
    runs the body and the head separately calls them through this root."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        return logits_at(self.model, input_ids, attention_mask, positions)


def logits_at(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """(N, V) logits at ``positions`` (N, 2) = (row, column) only: the decoder body runs on the
    whole batch, the LM head on N rows, so a 262k-token head never sees (B, T, V)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    logits = lm.get_output_embeddings()(hidden[positions[:, 0], positions[:, 1]])  # (N, V)
    cap = getattr(lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
