"""LoRA adapters and gradient checkpointing, the same way for classifiers and causal LMs.

Adapters go INTO the one loaded base (peft injects them in place; no copy of the base is ever
made) and come out again with ``remove_adapters`` when the stage is done, so the next stage reads
the pristine pretrained weights. Adapters are float32 whatever the base's compute dtype, so their
updates and optimizer states never round to bf16.
"""

from __future__ import annotations

from typing import Any

import torch

from weaklift.config import ModelConfig


def with_adapters(model: Any, cfg: ModelConfig, task_type: str | None = None) -> Any:
    """``model`` with fresh LoRA adapters (the caller seeds) and checkpointing if ``cfg`` asks."""
    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(
        model,
        LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type=task_type,
        ),
    )
    for param in wrapped.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    apply_checkpointing(model, cfg)
    return wrapped


def apply_checkpointing(model: Any, cfg: ModelConfig) -> None:
    """Recompute activations in the backward pass when ``cfg.gradient_checkpointing`` says so.
    Non-reentrant: frozen embeddings under LoRA need no input that requires grad."""
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable({"use_reentrant": False})


def remove_adapters(wrapped: Any) -> Any:
    """The base model back, adapters taken out (peft ``unload``: no merge), checkpointing off,
    in eval mode; a model without adapters is returned as it is (also switched to eval)."""
    base = wrapped.unload() if hasattr(wrapped, "unload") else wrapped
    if getattr(base, "is_gradient_checkpointing", False):
        base.gradient_checkpointing_disable()
    return base.eval()
