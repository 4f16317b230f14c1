"""The experiment schema: every field with its help text and the checks one field (or a pair of
fields) can make alone. Rules that depend on the task's kind live in its recipe
(``weaklift.recipes``); reading YAML and overrides lives in ``weaklift.config_files``. This module
imports no task, method or model, so anything may import it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from weaklift.config_base import MethodSpec, Strict, method_specs
from weaklift.config_generation import (
    CandidatesConfig,
    GenerationConfig,
    JudgesConfig,
    PreferenceConfig,
    PreferenceTrainConfig,
)

__all__ = [
    "SELECTION_RULES",
    "CandidatesConfig",
    "ExperimentConfig",
    "GenerationConfig",
    "JudgesConfig",
    "MethodSpec",
    "ModelConfig",
    "PreferenceConfig",
    "PreferenceTrainConfig",
    "SplitConfig",
    "TaskConfig",
    "TrackingConfig",
    "TrainConfig",
    "output_dir_problem",
]


class TaskConfig(Strict):
    name: str = Field("facts", description="Built-in task name (see `weaklift tasks`) or `file`.")
    path: str | None = Field(
        None,
        description="Local data: a JSONL/CSV/Parquet file or a folder (hub columns or the original release).",
    )
    template: str | None = Field(
        None,
        description='Format string over columns, e.g. "{passage}\\nQuestion: {question}" (task `file`).',
    )
    label_column: str = Field("label", description="Column holding the label (task `file`).")
    group_column: str | None = Field(
        None,
        description="Column whose equal values must share a split, e.g. an entity or author id "
        "(task `file`; built-in tasks such as facts bring their own groups).",
    )
    kind: Literal["classification", "generation"] | None = Field(
        None,
        description="Task kind; only task `file` needs it (default classification). Built-ins know theirs.",
    )
    target_column: str | None = Field(
        None, description="Column holding the target text (task `file` with task.kind=generation)."
    )
    max_examples: int | None = Field(
        None,
        ge=1,
        description="Keep a random subset (fixed by task.seed) of this many examples before splitting.",
    )
    seed: int = Field(
        0,
        ge=0,
        description="Fixes the dataset: label coins, distractors, max_examples subsampling. "
        "The top-level seed never changes the data.",
    )
    board: bool = Field(
        False,
        description="Tasks `chess` and `chess_move`: show the board as an 8x8 grid of characters too.",
    )
    classes: Literal["binary", "all"] = Field(
        "binary",
        description="Multi-class sentiment (tweeteval_sentiment): binary = negative vs positive, "
        "neutral left out (Burns et al.); all = keep every class.",
    )


class LoraConfig(Strict):
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules LoRA wraps (peft syntax)."
    )


class GenftConfig(Strict):
    """Generative finetuning before weak-to-strong training (Burns et al. 2023, sec. 5.2.2)."""

    enabled: bool = Field(
        False, description="Finetune the backbone with the causal-LM loss on task text first."
    )
    mode: Literal["lora", "full"] = Field(
        "lora", description="Train LoRA adapters (merged afterwards) or all weights."
    )
    text_file: str | None = Field(
        None,
        description="Plain-text file, one document per line; default: the task's inputs (all splits, no labels).",
    )
    max_texts: int = Field(
        1000, ge=2, description="Train on at most this many texts (CPU budget); 10% held out."
    )
    epochs: int = Field(1, ge=1, description="Passes over the texts.")
    lr: float = Field(2e-4, gt=0, description="AdamW learning rate.")
    batch_size: int = Field(8, ge=1, description="Texts per step.")
    max_length: int = Field(128, ge=8, description="Truncate texts to this many tokens.")
    exclude_test: bool = Field(
        True,
        description="Leave the test split's inputs out of the finetuning texts, so no reported "
        "accuracy is transductive.",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)


class ModelConfig(Strict):
    model: str = Field(
        description="Zoo name (`weaklift models`), hub id, local folder, or .gguf file."
    )
    mode: Literal["probe", "lora", "full"] = Field(
        "probe",
        description="probe: frozen cached features + head; lora: peft adapters; full: all weights.",
    )
    pooling: Literal["auto", "last", "mean"] = Field(
        "auto", description="auto = last non-pad token for decoders, mean for encoders."
    )
    max_length: int = Field(256, ge=4, description="Truncate inputs to this many tokens.")
    extract_batch_size: int = Field(
        32, ge=1, description="Batch size for probe feature extraction."
    )
    layer: int | Literal["middle"] | list[int] = Field(
        "middle",
        description="Hidden state the head reads: an index (0 = embeddings, negative from the end, "
        "-1 = last), middle, or a list of indices whose states are concatenated (README: Layers).",
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)
    seed: int | None = Field(
        None,
        description="This model's own seed (init, data order, bootstrap resample); default: `seed`. "
        "With several `seeds` it shifts with them (seed + run seed − first run seed).",
    )
    subset: Literal["full", "bootstrap"] = Field(
        "full",
        description="Weak members: train on all of weak_train, or on a bootstrap resample of it.",
    )
    genft: GenftConfig = Field(default_factory=GenftConfig)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto",
        description="Compute dtype of the backbone's weights and forward pass: auto = bfloat16 where "
        "the device runs it fast (CUDA with bf16, a CPU with AMX/AVX-512-BF16), else float32. "
        "Heads, adapters, optimizer states and losses stay float32.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="lora/full: recompute activations in the backward pass instead of keeping "
        "them (less memory, about a third more compute).",
    )
    fsdp: bool = Field(
        False,
        description="full, under several processes: shard weights, gradients and optimizer state "
        "over the processes (FSDP, one unit per transformer block) instead of a whole copy on each "
        "(DDP). Same results; memory divided by the process count.",
    )

    @model_validator(mode="after")
    def _fsdp_shards_full_finetuning(self) -> ModelConfig:
        if self.fsdp and self.mode != "full":
            raise ValueError(
                f"fsdp shards full finetuning (mode is {self.mode}); set mode=full or fsdp=false"
            )
        return self

    @field_validator("layer", mode="before")
    @classmethod
    def _layer_is_index_middle_or_list(cls, value: Any) -> Any:
        def index(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if value == "middle" or index(value):
            return value
        if isinstance(value, list) and value and all(index(v) for v in value):
            return value
        raise ValueError("use an index (e.g. 9, or -1 for the last), middle, or a list like [8, 9]")

    @property
    def label(self) -> str:
        """How results name this model: its model string, plus its seed/subset when they differ."""
        parts = [self.model]
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        if self.subset != "full":
            parts.append(self.subset)
        return " ".join(parts)


class ProbeTrainConfig(Strict):
    epochs: int = Field(
        30, ge=1, description="Passes over the training split (a linear head is cheap)."
    )
    batch_size: int = Field(64, ge=1, description="Optimizer batch size.")
    micro_batch_size: int | None = Field(
        None, ge=1, description="Split each batch for gradient accumulation."
    )
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate for the head.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")


class FinetuneTrainConfig(Strict):
    epochs: int = Field(2, ge=1, description="Passes over the training split.")
    batch_size: int = Field(16, ge=1, description="Optimizer batch size.")
    micro_batch_size: int | None = Field(
        4, ge=1, description="Split each batch for gradient accumulation."
    )
    lr: float = Field(5e-5, gt=0, description="AdamW learning rate (LoRA usually wants ~1e-4).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    group_by_length: bool = Field(
        True,
        description="Batches of similar-length texts (sorted inside shuffled buckets of 50 "
        "batches, then shuffled), padded to their own longest: less padding, same randomness.",
    )


SelectionRule = Literal["final", "weak_agreement"]

SELECTION_RULES: dict[str, str] = {
    "final": "fixed budget, final epoch scored (Burns et al. 2023)",
    "weak_agreement": "epoch that best agrees with each model's own supervision on held-out data "
    "(weak: GT of weak_holdout; ceiling: GT of val; students: weak labels of val)",
}


class TrainConfig(Strict):
    probe: ProbeTrainConfig = Field(default_factory=ProbeTrainConfig)
    finetune: FinetuneTrainConfig = Field(default_factory=FinetuneTrainConfig)
    select: SelectionRule = Field(
        "final",
        description="final: train for the fixed budget and score the last epoch, every model alike "
        "(Burns et al.); weak_agreement: keep the epoch that best matches the model's own "
        "supervision on held-out data (students: weak labels of val, which biases toward imitation).",
    )

    @model_validator(mode="before")
    @classmethod
    def _select_best_was_replaced(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "select_best" in raw:
            raise ValueError(
                "select_best was replaced by train.select; use train.select=final (the default, "
                "Burns et al.) or train.select=weak_agreement (what select_best=true did)"
            )
        return raw


class SplitConfig(Strict):
    weak_train: int = Field(
        1000, ge=2, description="GT examples on the weak side, weak_holdout included."
    )
    weak_holdout: int | float = Field(
        0.2,
        gt=0,
        description="Carved from weak_train (a fraction in (0, 1) or a count): the weak side's own "
        "held-out GT, for weak model selection, the best member and dynamic ensemble weights.",
    )
    transfer: int = Field(
        1000, ge=1, description="Examples the weak model labels for the student (ceiling: GT)."
    )
    val: int = Field(
        200, ge=1, description="Model selection (students see weak labels on it, never GT)."
    )
    test: int = Field(1000, ge=1, description="Held-out evaluation.")
    balance: bool = Field(False, description="Equal class counts in every split.")
    by: str | None = Field(
        None,
        description="Easy-to-hard: a numeric task column (chess: `rating`); weak_train gets the "
        "examples with the lowest values, transfer/val/test are drawn from the rest.",
    )
    hard_test: bool = Field(
        False, description="With `by`: test gets the highest values; transfer and val the middle."
    )

    @model_validator(mode="after")
    def _difficulty_options_fit(self) -> SplitConfig:
        if self.hard_test and self.by is None:
            raise ValueError("split.hard_test needs split.by (e.g. split.by=rating)")
        if self.balance and self.by is not None:
            raise ValueError(
                "split.balance cannot be combined with split.by; set split.balance=false"
            )
        return self

    @model_validator(mode="after")
    def _holdout_fits(self) -> SplitConfig:
        if isinstance(self.weak_holdout, float) and self.weak_holdout >= 1:
            raise ValueError(
                f"split.weak_holdout: a fraction must lie in (0, 1), got {self.weak_holdout}; "
                "or give a count such as 200"
            )
        if not 1 <= self.holdout_count() < self.weak_train:
            raise ValueError(
                f"split.weak_holdout: {self.holdout_count()} held-out examples leave none of "
                f"weak_train={self.weak_train} to train on; lower it"
            )
        return self

    def holdout_count(self) -> int:
        """How many of weak_train's examples are held out (at least one)."""
        if isinstance(self.weak_holdout, float):
            return max(1, round(self.weak_train * self.weak_holdout))
        return self.weak_holdout


class TrackingConfig(Strict):
    """Where runs are also logged: params, metrics, per-step curves and the HTML report."""

    backend: Literal["none", "mlflow"] = Field(
        "none", description="none, or mlflow (pip install weaklift[mlflow])."
    )
    uri: str | None = Field(
        None, description="Tracking URI; default: a local file store <output_dir>/mlruns."
    )
    experiment: str | None = Field(
        None, description="Experiment name; default: the sweep's name, or `weaklift` for runs."
    )


class ExperimentConfig(Strict):
    task: TaskConfig = Field(default_factory=TaskConfig)
    weak: ModelConfig | list[ModelConfig] = Field(
        default_factory=lambda: ModelConfig(model="smollm2-135m"),
        description="The weak supervisor, or a list of them (an ensemble; Cui et al. 2024).",
    )
    strong: ModelConfig = Field(default_factory=lambda: ModelConfig(model="gemma3-270m"))
    ladder: list[ModelConfig] | None = Field(
        None,
        description="Bootstrapping [m0, m1, ..., mk]: m0 is the weak supervisor, mk the strong student; "
        "each rung learns the previous rung's labels on transfer (Burns et al. 2023, sec. 4.3.1).",
    )
    methods: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec(name="xent"), MethodSpec(name="logconf")],
        description="Methods to train one student each: names or {name: ..., <option>: ...}.",
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    seed: int = Field(
        0, ge=0, description="Seeds splits, initialisation and data order (task.seed: the data)."
    )
    seeds: int | list[int] | None = Field(
        None,
        description="Train every model once per seed: a count n (seed, seed+1, ..., seed+n-1) or "
        "a list of seeds. Results report each seed, the mean, the spread and a PGR interval "
        "over seeds and test examples. Default: the task kind's (classification 3; generation "
        "and pairs 1, which is all they run).",
    )
    controls: bool | None = Field(
        None,
        description="Add an oracle student (GT labels through the student path; should reach the "
        "ceiling) and a shuffled student (weak labels permuted; should fall to chance). "
        "Default: the task kind's (classification true; generation and pairs have none).",
    )
    output_dir: str = Field(
        "weaklift_runs", description="Artifact store and run folders live here."
    )
    bootstrap_samples: int = Field(
        1000, ge=10, description="Resamples for the PGR confidence interval."
    )
    preference: PreferenceConfig | None = Field(
        None,
        description="Preference optimisation (DPO/cDPO/IPO) of the strong causal LM; "
        "required settings for pair tasks default to preference.losses=[dpo].",
    )
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="Experiment tracker (`tracking: mlflow`)."
    )

    @field_validator("tracking", mode="before")
    @classmethod
    def _tracking_from_name(cls, value: Any) -> Any:
        return {"backend": value} if isinstance(value, str) else value

    @field_validator("output_dir")
    @classmethod
    def _output_dir_usable(cls, value: str) -> str:
        problem = output_dir_problem(Path(value))
        if problem:
            raise ValueError(
                f"{problem}; point output_dir at a folder you can write (made if missing)"
            )
        return value

    @field_validator("methods", mode="before")
    @classmethod
    def _methods_from_names(cls, value: Any) -> Any:
        return method_specs(value)

    @model_validator(mode="before")
    @classmethod
    def _ladder_sets_weak_and_strong(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or not raw.get("ladder"):
            return raw
        ladder = [{"model": m} if isinstance(m, str) else m for m in raw["ladder"]]
        if len(ladder) < 3:
            raise ValueError("ladder: list at least three models [weak, intermediate..., strong]")
        if "weak" in raw or "strong" in raw:
            raise ValueError(
                "ladder: set either ladder or weak/strong; the ladder's ends are weak and strong"
            )
        return {**raw, "ladder": ladder, "weak": ladder[0], "strong": ladder[-1]}

    @field_validator("seeds")
    @classmethod
    def _seeds_are_distinct(cls, value: int | list[int] | None) -> int | list[int] | None:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"seeds: give a count of at least 1 or a list, got {value}")
        if isinstance(value, list) and (
            not value or len(set(value)) != len(value) or min(value) < 0
        ):
            raise ValueError(f"seeds: list distinct seeds >= 0, e.g. [0, 1, 2], got {value}")
        return value

    @property
    def run_seeds(self) -> list[int]:
        """The seeds every model is trained with."""
        if isinstance(self.seeds, list):
            return list(self.seeds)
        return [self.seed + i for i in range(self.seeds or 1)]

    @property
    def weak_members(self) -> list[ModelConfig]:
        return self.weak if isinstance(self.weak, list) else [self.weak]

    @model_validator(mode="after")
    def _models_fit_their_roles(self) -> ExperimentConfig:
        if isinstance(self.weak, list) and not self.weak:
            raise ValueError("weak: list at least one weak model")
        if self.strong.model == "tfidf":
            raise ValueError("strong.model: tfidf is a weak-member baseline, not a strong student")
        labels = [m.label for m in self.weak_members]
        if len(set(labels)) != len(labels):
            raise ValueError(
                f"weak: duplicate members {labels}; give them different seeds or subsets"
            )
        return self


def output_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold the artifact store (a file; under a file; not writable), or None.

    Checks only; creates nothing, so ``weaklift validate`` stays free of side effects.
    """
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{path} cannot be created: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{path} cannot be created: {existing} is not writable"
    return None
