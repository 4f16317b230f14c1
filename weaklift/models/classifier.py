"""Classifiers: a linear head on cached features (probe), or backbone + pooling + head (lora, full).

Both map a batch dict to logits (B, K), so one training loop serves every mode. Only trainable
parameters are saved (head; head + LoRA adapters; or everything for full finetuning), as safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from weaklift import distributed
from weaklift.config import ModelConfig
from weaklift.models.adapters import (
    apply_checkpointing,
    keep_input_dtype,
    remove_adapters,
    with_adapters,
)
from weaklift.models.device import mixed_precision, resolve_dtype
from weaklift.models.features import resolve_layers
from weaklift.models.pooling import pool, resolve_pooling


class LinearHead(nn.Module):
    """Probe: logits = W·standardise(features) + b on frozen backbone features.

    Standardising with the training split's mean and std (saved with the head) makes one learning
    rate work for backbones whose hidden states differ in scale by orders of magnitude.
    """

    def __init__(
        self, hidden_size: int, num_classes: int, train_features: torch.Tensor | None = None
    ):
        super().__init__()
        self.linear = nn.Linear(hidden_size, num_classes)
        mean = (
            torch.zeros(hidden_size) if train_features is None else train_features.float().mean(0)
        )
        std = torch.ones(hidden_size) if train_features is None else train_features.float().std(0)
        self.register_buffer("feature_mean", mean)
        self.register_buffer("feature_std", std.clamp_min(1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, H) -> (B, K)
        standardised = (features.float() - self.feature_mean) / self.feature_std
        return self.linear(standardised)


class PairwiseRewardHead(nn.Module):
    """Probe reward model: r(x) = w·standardise(features) + b; pair logits (r(b), r(a)).

    softmax over (r(b), r(a)) gives P(a ≻ b) = σ(r(a) − r(b)), the Bradley–Terry probability,
    so every classification method trains a reward model unchanged.
    """

    def __init__(self, hidden_size: int, train_features: torch.Tensor | None = None):
        super().__init__()
        self.reward = LinearHead(hidden_size, 1, train_features)

    def forward(
        self, features: torch.Tensor, features_b: torch.Tensor
    ) -> torch.Tensor:  # -> (B, 2)
        return torch.cat([self.reward(features_b), self.reward(features)], dim=-1)


class BackboneClassifier(nn.Module):
    """Backbone (optionally LoRA-wrapped) → pooled hidden state of ``layer`` → linear head.

    The last state has passed the model's final norm; an intermediate state is the raw residual
    stream, whose scale grows with depth, so it gets a parameter-free layer norm before the head
    (the probe's standardisation plays that role in probe mode).
    """

    def __init__(
        self,
        backbone: nn.Module,
        hidden_size: int,
        num_classes: int,
        pooling: str,
        layer: int | str | list[int] = -1,
        compute_dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.layer = layer
        width = len(layer) if isinstance(layer, list) else 1
        self.head = nn.Linear(hidden_size * width, num_classes)
        self.compute_dtype = compute_dtype

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # The backbone runs in the compute dtype (autocast: float32 master weights of full
        # finetuning multiply in bf16 too); the head and everything after it in float32.
        with mixed_precision(input_ids.device, self.compute_dtype):
            pooled = self._pooled(input_ids, attention_mask)
        return self.head(pooled.float())  # (B, K)

    def _pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.layer == -1:  # no need to keep every state
            hidden = self.backbone(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state  # (B, T, H)
            pooled = pool(hidden, attention_mask, self.pooling)  # (B, H)
        else:
            states = self.backbone(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            ).hidden_states  # L+1 × (B, T, H)
            last = len(states) - 1
            pooled = torch.cat(
                [
                    _normalise(pool(states[i], attention_mask, self.pooling), i == last)
                    for i in resolve_layers(self.layer, len(states))
                ],
                dim=-1,
            )  # (B, H·layers)
        return pooled


class BackboneRewardModel(BackboneClassifier):
    """Finetuned reward model: scalar head on the pooled state; pair logits (r(b), r(a))."""

    def __init__(
        self,
        backbone: nn.Module,
        hidden_size: int,
        pooling: str,
        layer: int | str | list[int] = -1,
        compute_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(backbone, hidden_size, 1, pooling, layer, compute_dtype)

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        input_ids_b: torch.Tensor,
        attention_mask_b: torch.Tensor,
    ) -> torch.Tensor:
        reward_a = super().forward(input_ids, attention_mask)  # (B, 1)
        reward_b = super().forward(input_ids_b, attention_mask_b)  # (B, 1)
        return torch.cat([reward_b, reward_a], dim=-1)  # (B, 2)


def build_backbone_classifier(
    loaded, cfg: ModelConfig, num_classes: int, pairwise: bool = False
) -> BackboneClassifier:
    """Wrap a loaded backbone for ``lora`` or ``full`` training; the head starts from torch's seed.

    lora injects adapters into ``loaded.model`` itself (no copy): ``release_backbone`` takes them
    out again after the stage. full trains every weight of ``loaded.model``, which must be a
    private load (``StageContext.trainable_backbone``).
    """
    compute = resolve_dtype(cfg.dtype, loaded.device)
    apply_checkpointing(loaded.model, cfg)
    if cfg.mode == "lora":
        backbone = with_adapters(loaded.model, cfg.lora)
        if compute != torch.float32:  # autocast casts for the adapters; peft's own casts are waste
            keep_input_dtype(backbone)
    else:
        backbone = loaded.model.requires_grad_(True)
    pooling = resolve_pooling(cfg.pooling, loaded.is_decoder)
    if pairwise:
        classifier = BackboneRewardModel(backbone, loaded.hidden_size, pooling, cfg.layer, compute)
    else:
        classifier = BackboneClassifier(
            backbone, loaded.hidden_size, num_classes, pooling, cfg.layer, compute
        )
    classifier.to(loaded.device)
    classifier.head.float()
    return classifier


def release_backbone(classifier: nn.Module) -> None:
    """After a lora or full stage: adapters out of the shared base (lora), so later stages read
    the pristine pretrained weights; the classifier no longer holds (or pins) the backbone, so a
    full stage's private weights are freed with it."""
    if getattr(classifier, "backbone", None) is not None:
        remove_adapters(classifier.backbone)
        classifier.backbone = None


def _normalise(pooled: torch.Tensor, is_last: bool) -> torch.Tensor:
    """Intermediate states: zero mean, unit variance per example (no learned parameters)."""
    return pooled if is_last else nn.functional.layer_norm(pooled, pooled.shape[-1:])


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What training changed: a probe's whole (tiny) state; a finetuned model's trainable weights."""
    if isinstance(model, LinearHead | PairwiseRewardHead):
        return {n: t.detach().cpu().contiguous() for n, t in model.state_dict().items()}
    return {
        n: distributed.whole(p).detach().cpu().contiguous()
        for n, p in model.named_parameters()
        if p.requires_grad
    }


def save_trainable(model: nn.Module, path: Path) -> None:
    save_file(trainable_state(model), str(path))


def load_trainable(model: nn.Module, path: Path) -> None:
    """Load saved trainable weights; every saved tensor must find its parameter."""
    state = load_file(str(path))
    missing = set(state) - set(model.state_dict())
    if missing:
        raise ValueError(f"saved weights do not fit the model: {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
