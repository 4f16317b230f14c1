"""Typed experiment configuration: YAML file + ``key.sub=value`` overrides, validated before any work.

Every field carries its help text; ``weaklift validate`` checks a config without loading a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from weaklift.errors import WeakliftError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskConfig(_Strict):
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


class LoraConfig(_Strict):
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules LoRA wraps (peft syntax)."
    )


class GenftConfig(_Strict):
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


class ModelConfig(_Strict):
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


class ProbeTrainConfig(_Strict):
    epochs: int = Field(
        30, ge=1, description="Passes over the training split (a linear head is cheap)."
    )
    batch_size: int = Field(64, ge=1, description="Optimizer batch size.")
    micro_batch_size: int | None = Field(
        None, ge=1, description="Split each batch for gradient accumulation."
    )
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate for the head.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")


class FinetuneTrainConfig(_Strict):
    epochs: int = Field(2, ge=1, description="Passes over the training split.")
    batch_size: int = Field(16, ge=1, description="Optimizer batch size.")
    micro_batch_size: int | None = Field(
        4, ge=1, description="Split each batch for gradient accumulation."
    )
    lr: float = Field(5e-5, gt=0, description="AdamW learning rate (LoRA usually wants ~1e-4).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")


SelectionRule = Literal["final", "weak_agreement"]

SELECTION_RULES: dict[str, str] = {
    "final": "fixed budget, final epoch scored (Burns et al. 2023)",
    "weak_agreement": "epoch that best agrees with each model's own supervision on held-out data "
    "(weak: GT of weak_holdout; ceiling: GT of val; students: weak labels of val)",
}


class TrainConfig(_Strict):
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


class SplitConfig(_Strict):
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


class GenerationConfig(_Strict):
    """Decoding and target-building settings of generation tasks (Cui et al. 2024)."""

    beams: int = Field(4, ge=1, description="Beam width of every model's beam search.")
    n_best: int = Field(
        2, ge=1, description="Outputs kept per prompt from each weak generator (<= beams)."
    )
    max_new_tokens: int = Field(40, ge=1, description="Longest output generated.")
    length_penalty: float = Field(
        1.0, description="Beam score = log-prob / length**length_penalty (1 = per-token mean)."
    )
    batch_size: int = Field(8, ge=1, description="Prompts decoded together (grouped by length).")
    max_prompt_length: int = Field(
        128,
        ge=4,
        description="Prompt tokens every causal-LM stage keeps (SFT, decoding, rescoring, "
        "candidates, judges, DPO): one rule, so a policy trains on the contexts it decodes with.",
    )
    prompt_keep: Literal["end", "start"] = Field(
        "end",
        description="Which side of a long prompt is kept (a BOS prefix always stays): end, what "
        "the reply follows, or start.",
    )
    max_target_length: int = Field(
        64, ge=2, description="Truncate training targets to this many tokens (EOS included)."
    )
    share: Literal["even", "entropy"] = Field(
        "even",
        description="How a weak word's log-prob is shared over its strong tokens: evenly, or in "
        "proportion to the strong model's (detached) entropy at each token.",
    )

    @model_validator(mode="after")
    def _n_best_within_beams(self) -> GenerationConfig:
        if self.n_best > self.beams:
            raise ValueError(
                f"generation.n_best: {self.n_best} outputs need at least as many beams "
                f"(generation.beams={self.beams})"
            )
        return self


class TrackingConfig(_Strict):
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


class MethodSpec(_Strict):
    """One weak-to-strong method and its own options (validated by the method's config class)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """The name results are reported under: ``logconf`` or ``logconf(alpha=0.75)``."""
        if not self.options:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}({inner})"


def _method_specs(value: Any) -> Any:
    """``[xent, {name: logconf, alpha: 0.5}]`` -> MethodSpec dicts (names alone, or name + options)."""
    if isinstance(value, str):
        value = [value]
    specs = []
    for item in value or []:
        if isinstance(item, str):
            specs.append({"name": item})
        elif isinstance(item, dict) and "options" not in item:
            item = dict(item)
            specs.append({"name": item.pop("name", None), "options": item})
        else:
            specs.append(item)
    return specs


class PreferenceTrainConfig(_Strict):
    """The DPO loop: one optimizer step per batch of pairs (chosen and rejected in one forward)."""

    epochs: int = Field(1, ge=1, description="Passes over the pairs.")
    batch_size: int = Field(8, ge=1, description="Pairs per optimizer step.")
    micro_batch_size: int | None = Field(
        2, ge=1, description="Split each batch for gradient accumulation (memory)."
    )
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (LoRA; full wants ~1e-6).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_response_length: int = Field(
        128,
        ge=1,
        description="Response tokens kept (from the start; + EOS when it fits); the prompt follows "
        "generation.max_prompt_length and generation.prompt_keep.",
    )


class JudgesConfig(_Strict):
    """How weak judges' scores of candidates become (chosen, rejected) pairs (Cui et al. 2024)."""

    weights: Literal["uniform", "dynamic"] | list[float] = Field(
        "uniform",
        description="Judge weights: uniform; dynamic (softmax of mean confidence / temperature, as "
        "multi_naive); or one non-negative number per judge, rescaled to sum 1.",
    )
    temperature: float = Field(1.0, gt=0, description="Softmax temperature for dynamic weights.")
    min_margin: float | None = Field(
        None,
        ge=0,
        description="Drop a pair when some judge prefers the rejected candidate by more than this "
        "(length-normalised log-likelihood); unset keeps every pair.",
    )
    sample_size: int = Field(20, ge=0, description="Pairs written to the readable sample.jsonl.")

    @field_validator("weights")
    @classmethod
    def _usable_weights(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or min(value) < 0 or sum(value) <= 0):
            raise ValueError("list non-negative judge weights with a positive sum")
        return value


class CandidatesConfig(_Strict):
    """How the student writes candidates for the weak judges: beam n-best or seeded sampling."""

    num: int = Field(4, ge=2, description="Candidates per prompt (K).")
    decoding: Literal["sample", "beam"] = Field(
        "sample", description="sample (seeded, with temperature) or beam (the K-best beams)."
    )
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    max_new_tokens: int = Field(48, ge=1, description="Longest candidate, in tokens.")
    batch_size: int = Field(8, ge=1, description="Prompts decoded together.")


class PreferenceConfig(_Strict):
    """Preference optimisation of the strong causal LM (policy = strong.model, LoRA or full)."""

    losses: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec(name="dpo")],
        description="One trained policy per loss: dpo, cdpo, ipo, or {name: cdpo, beta: .., epsilon: ..}.",
    )
    train: PreferenceTrainConfig = Field(default_factory=PreferenceTrainConfig)
    judges: JudgesConfig = Field(default_factory=JudgesConfig)
    candidates: CandidatesConfig = Field(default_factory=CandidatesConfig)
    students: list[str] | None = Field(
        None,
        description="Generation tasks: the students (method labels, e.g. [soft]) that write "
        "candidates for the weak generators to judge and are then trained on the pairs; "
        "default: every student.",
    )
    weak_judges: bool = Field(
        False,
        description="Pair tasks: also train each loss on pairs the weak members judge from the "
        "policy's own candidates for the transfer prompts (no ground-truth replies), and report "
        "PGR against the policy trained on the ground-truth pairs. The weak judges are the weak "
        "models ZERO-SHOT (their pretrained log-likelihoods): nothing trains them, weak_train "
        "is unused.",
    )

    @field_validator("losses", mode="before")
    @classmethod
    def _losses_from_names(cls, value: Any) -> Any:
        return _method_specs(value)

    def check_losses(self) -> None:
        """Every loss exists and its options are valid; ValueError names the field (checked by
        ExperimentConfig, so the message carries the full path)."""
        from weaklift.methods import PREFERENCE_LOSSES, validate_method_options

        if not self.losses:
            raise ValueError("preference.losses: list at least one loss, e.g. [dpo, cdpo]")
        for i, spec in enumerate(self.losses):
            if spec.name not in PREFERENCE_LOSSES:
                raise ValueError(
                    f"preference.losses.{i}: unknown loss {spec.name!r}; "
                    f"choose from {sorted(PREFERENCE_LOSSES)}"
                )
            validate_method_options(spec, f"preference.losses.{i}", PREFERENCE_LOSSES)
        labels = [spec.label for spec in self.losses]
        if len(set(labels)) != len(labels):
            raise ValueError(f"preference.losses: duplicate entries {labels}")


class ExperimentConfig(_Strict):
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
    seeds: int | list[int] = Field(
        3,
        description="Train every model once per seed: a count n (seed, seed+1, ..., seed+n-1) or "
        "a list of seeds. Results report each seed, the mean, the spread and a PGR interval "
        "over seeds and test examples.",
    )
    controls: bool = Field(
        True,
        description="Add an oracle student (GT labels through the student path; should reach the "
        "ceiling) and a shuffled student (weak labels permuted; should fall to chance).",
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
        return _method_specs(value)

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
    def _seeds_are_distinct(cls, value: int | list[int]) -> int | list[int]:
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
        return [self.seed + i for i in range(self.seeds)]

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

    @property
    def task_kind(self) -> str:
        from weaklift.tasks import task_kind

        return task_kind(self.task)

    @model_validator(mode="after")
    def _preference_fits(self) -> ExperimentConfig:
        from weaklift.tasks import TASKS

        if self.preference is not None:
            self.preference.check_losses()
            if self.preference.students is not None and self.task_kind != "generation":
                raise ValueError(
                    "preference.students: only generation tasks train students before preference "
                    "optimisation; remove it"
                )
            weights = self.preference.judges.weights
            if isinstance(weights, list) and len(weights) != len(self.weak_members):
                raise ValueError(
                    f"preference.judges.weights: {len(weights)} weights for "
                    f"{len(self.weak_members)} weak judges (the weak members)"
                )
        task = TASKS.get(self.task.name)
        if (self.preference is not None or (task and task.kind == "pairs")) and (
            self.strong.mode == "probe"
        ):
            raise ValueError(
                "strong.mode: preference optimisation trains the strong causal LM itself; "
                "set strong.mode=lora or strong.mode=full"
            )
        return self

    @model_validator(mode="after")
    def _methods_exist(self) -> ExperimentConfig:
        from weaklift.methods import METHODS, validate_method_options

        if self.task_kind == "generation":
            _check_generation(self)
            return self
        _check_method_list(
            self,
            METHODS,
            validate_method_options,
            example="methods=[xent,logconf]",
            unknown="unknown method {name!r}",
        )
        if self.ladder:
            for i, spec in enumerate(self.methods):
                if METHODS[spec.name].multi_weak:
                    raise ValueError(
                        f"methods.{i}: {spec.name} needs several weak members, but a ladder's rungs "
                        "each have one supervisor; use a single-weak method (e.g. xent, logconf)"
                    )
        return self

    @model_validator(mode="after")
    def _preference_task_fits(self) -> ExperimentConfig:
        """Preference pairs need pairwise (Bradley–Terry) models and methods; say so before any work."""
        from weaklift.methods import METHODS
        from weaklift.models.tfidf import TFIDF_MODEL
        from weaklift.tasks import TASKS

        spec = TASKS.get(self.task.name)
        if spec is None or spec.kind != "preference":
            return self
        for i, member in enumerate(self.weak_members):
            if member.model == TFIDF_MODEL:
                where = f"weak.{i}.model" if isinstance(self.weak, list) else "weak.model"
                raise ValueError(
                    f"{where}: tfidf scores single texts and has no pairwise form, so it cannot "
                    f"supervise the preference task {self.task.name}; use a neural weak model"
                )
        for i, method in enumerate(self.methods):
            if not METHODS[method.name].pairwise:
                raise ValueError(
                    f"methods.{i}: {method.name} has no pairwise form (its loss depends on each "
                    f"reward, not only on r(a) − r(b)), so it cannot train a reward model for "
                    f"{self.task.name}; use multi_naive or joint"
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


def _check_method_list(
    cfg: ExperimentConfig,
    registry: dict[str, type],
    validate_options: Any,
    example: str,
    unknown: str,
) -> None:
    """Methods exist in ``registry``, their options validate, weight lists fit the members, no
    duplicates; shared by classification and generation tasks."""
    if not cfg.methods:
        raise ValueError(f"methods: list at least one method, e.g. {example}")
    for i, spec in enumerate(cfg.methods):
        if spec.name not in registry:
            what = unknown.format(name=spec.name)
            raise ValueError(f"methods.{i}: {what}; choose from {sorted(registry)}")
        validate_options(spec, where=f"methods.{i}")
        weights = spec.options.get("weights")
        if isinstance(weights, list) and len(weights) != len(cfg.weak_members):
            raise ValueError(
                f"methods.{i}.weights: {len(weights)} weights for {len(cfg.weak_members)} weak members"
            )
    labels = [spec.label for spec in cfg.methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"methods: duplicate entries {labels}")


def _check_generation(cfg: ExperimentConfig) -> None:
    """What a generation task needs: generation methods, generators that train (lora/full)."""
    from weaklift.methods.generation import GEN_METHODS, validate_gen_method_options

    _check_method_list(
        cfg,
        GEN_METHODS,
        validate_gen_method_options,
        example="methods=[sft,soft]",
        unknown="{name!r} is not a generation method (task "
        + repr(cfg.task.name)
        + " generates text)",
    )
    for where, model in [("strong", cfg.strong)] + [
        (f"weak.{i}" if isinstance(cfg.weak, list) else "weak", m)
        for i, m in enumerate(cfg.weak_members)
    ]:
        if model.model == "tfidf":
            raise ValueError(f"{where}.model: tfidf cannot generate text; use a causal LM")
        if model.mode == "probe":
            raise ValueError(
                f"{where}.mode: a probe cannot generate text; set {where}.mode=lora (or full)"
            )
        if model.genft.enabled:
            raise ValueError(f"{where}.genft: not used by generation tasks; remove it")
    if cfg.ladder:
        raise ValueError("ladder: bootstrapping ladders are for classification tasks only")
    if cfg.split.balance:
        raise ValueError("split.balance: generation tasks have no classes to balance")
    if cfg.preference is not None:
        _check_generation_preference(cfg, cfg.preference)


def _check_generation_preference(cfg: ExperimentConfig, pref: PreferenceConfig) -> None:
    """Preference optimisation continues named students; the weak generators are the judges."""
    if pref.weak_judges:
        raise ValueError(
            "preference.weak_judges: a generation task always uses its weak generators as judges; "
            "remove it"
        )
    labels = [spec.label for spec in cfg.methods]
    for i, label in enumerate(pref.students or []):
        if label not in labels:
            raise ValueError(
                f"preference.students.{i}: {label!r} is not one of this run's students {labels}; "
                "name a method label from `methods`"
            )


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "methods=[xent,logconf]"]`` into a nested dict; values parse as YAML,
    except for text fields (``task.template={sentence}`` is a template, not a mapping)."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise WeakliftError(f"override {pair!r} has no '='", "write key.sub=value, e.g. seed=1")
        key, raw = pair.split("=", 1)
        parts = key.strip().split(".")
        value = _parse_text(raw) if _is_text_field(parts) else _parse_value(raw)
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise WeakliftError(
                    f"override {pair!r} conflicts with another override of {part!r}"
                )
        node[parts[-1]] = value
    return nested


def _is_text_field(parts: list[str]) -> bool:
    """Whether a dotted key names a field typed ``str`` (or ``str | None``) in the schema."""
    model: type[BaseModel] | None = ExperimentConfig
    for i, part in enumerate(parts):
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return False
        options = [a for a in get_args(field.annotation) if a is not type(None)]
        options = options or [field.annotation]
        if i == len(parts) - 1:
            return all(option is str for option in options)
        models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        model = models[0] if len(models) == 1 else None
    return False


def _parse_text(raw: str) -> str | None:
    """A text field's value: the literal text, unquoted if written as a YAML string; empty = unset."""
    if raw.strip() in ("", "null", "~"):
        return None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, str) else raw


def _parse_value(raw: str) -> Any:
    """YAML scalars and explicit [lists]/{maps}; anything else stays the literal string
    (so ``task.template=Review: {text}`` is a template, not a mapping)."""
    if raw == "":
        return None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, dict | list) and not raw.lstrip().startswith(("[", "{")):
        return raw
    return value


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a cross-field check: its message already names the field
        return f"config field {message}"
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"config field {where}: unknown key (misspelt?); configs/default.yaml lists the valid keys"
    got = first.get("input")
    return f"config field {where}: {message}" + ("" if isinstance(got, dict) else f" (got {got!r})")


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Read YAML (optional), apply overrides, validate. Raises WeakliftError naming the field."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise WeakliftError(f"config file {path} not found", "pass an existing YAML file")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise WeakliftError(f"config file {path} is not valid YAML ({err})") from err
        if not isinstance(raw, dict):
            raise WeakliftError(
                f"config file {path} must hold a mapping of keys", "see configs/default.yaml"
            )
    return config_from_mapping(_deep_merge(raw, parse_overrides(overrides or [])))


def config_from_mapping(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw mapping (a YAML file's content, merged overrides, a sweep point)."""
    raw = dict(raw)
    # `weak=smollm2-135m` is shorthand for `weak.model=smollm2-135m`; lists may hold bare names too.
    for side in ("weak", "strong"):
        if isinstance(raw.get(side), str):
            raw[side] = {"model": raw[side]}
        if isinstance(raw.get(side), list):
            raw[side] = [{"model": m} if isinstance(m, str) else m for m in raw[side]]
    for side in ("weak", "strong"):
        if isinstance(raw.get(side), dict) and "model" not in raw[side]:
            raw[side] = {
                "model": ExperimentConfig.model_fields[side].default_factory().model,
                **raw[side],
            }
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise WeakliftError(_format_validation_error(err)) from None
