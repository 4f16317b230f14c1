"""The causal-LM side of the schema: decoding and targets of generation tasks, and preference
optimisation (DPO and its kin). Re-exported by ``weaklift.config``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from weaklift.config_base import MethodSpec, Strict, method_specs


class GenerationConfig(Strict):
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


class PreferenceTrainConfig(Strict):
    """The DPO loop: one optimizer step per batch of pairs (chosen and rejected in one forward)."""

    epochs: int = Field(1, ge=1, description="Passes over the pairs.")
    batch_size: int = Field(8, ge=1, description="Pairs per optimizer step.")
    micro_batch_size: int | None = Field(
        2, ge=1, description="Split each batch for gradient accumulation (memory)."
    )
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (LoRA; full wants ~1e-6).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    group_by_length: bool = Field(
        True, description="Batches of pairs of similar length (as train.finetune.group_by_length)."
    )
    max_response_length: int = Field(
        128,
        ge=1,
        description="Response tokens kept (from the start; + EOS when it fits); the prompt follows "
        "generation.max_prompt_length and generation.prompt_keep.",
    )


class JudgesConfig(Strict):
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


class CandidatesConfig(Strict):
    """How the student writes candidates for the weak judges: beam n-best or seeded sampling."""

    num: int = Field(4, ge=2, description="Candidates per prompt (K).")
    decoding: Literal["sample", "beam"] = Field(
        "sample", description="sample (seeded, with temperature) or beam (the K-best beams)."
    )
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    max_new_tokens: int = Field(48, ge=1, description="Longest candidate, in tokens.")
    batch_size: int = Field(8, ge=1, description="Prompts decoded together.")


class PreferenceConfig(Strict):
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
        return method_specs(value)
