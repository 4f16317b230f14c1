"""Config rules more than one recipe applies (each raises ValueError starting with the field)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from weaklift.config import ExperimentConfig, ModelConfig, PreferenceConfig


def check_method_list(
    cfg: ExperimentConfig,
    registry: dict[str, Any],
    validate_options: Callable[..., None],
    example: str,
    unknown: str,
) -> None:
    """Methods exist in ``registry``, their options validate, weight lists fit the members, no
    duplicates."""
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


def check_preference(cfg: ExperimentConfig, pref: PreferenceConfig) -> None:
    """Every loss exists with valid options; judge weights fit the judges; the policy trains."""
    from weaklift.methods import PREFERENCE_LOSSES, validate_method_options

    if not pref.losses:
        raise ValueError("preference.losses: list at least one loss, e.g. [dpo, cdpo]")
    for i, spec in enumerate(pref.losses):
        if spec.name not in PREFERENCE_LOSSES:
            raise ValueError(
                f"preference.losses.{i}: unknown loss {spec.name!r}; "
                f"choose from {sorted(PREFERENCE_LOSSES)}"
            )
        validate_method_options(spec, f"preference.losses.{i}", PREFERENCE_LOSSES)
    labels = [spec.label for spec in pref.losses]
    if len(set(labels)) != len(labels):
        raise ValueError(f"preference.losses: duplicate entries {labels}")
    weights = pref.judges.weights
    if isinstance(weights, list) and len(weights) != len(cfg.weak_members):
        raise ValueError(
            f"preference.judges.weights: {len(weights)} weights for "
            f"{len(cfg.weak_members)} weak judges (the weak members)"
        )
    check_policy_trains(cfg)


def check_policy_trains(cfg: ExperimentConfig) -> None:
    if cfg.strong.mode == "probe":
        raise ValueError(
            "strong.mode: preference optimisation trains the strong causal LM itself; "
            "set strong.mode=lora or strong.mode=full"
        )


def check_single_run_options(cfg: ExperimentConfig, kind: str) -> None:
    """Generation and pair runs train one seed for the fixed budget and have no controls: asking
    for more seeds, controls or another selection rule is an error, never silently ignored."""
    if len(cfg.run_seeds) > 1:
        raise ValueError(
            f"seeds: a {kind} run trains one seed; set seeds=1 and seed=N, or sweep over "
            "seed (weaklift sweep with grid: {seed: [0, 1, 2]})"
        )
    if cfg.controls:
        raise ValueError(
            f"controls: {kind} runs have no oracle or shuffled students; set controls=false"
        )
    if cfg.train.select != "final":
        raise ValueError(
            f"train.select: {kind} runs train for the fixed budget and score the last epoch; "
            "set train.select=final"
        )


def language_models(cfg: ExperimentConfig) -> list[tuple[str, ModelConfig]]:
    """Every model of the config with the field path a message names it by."""
    weak = [
        (f"weak.{i}" if isinstance(cfg.weak, list) else "weak", m)
        for i, m in enumerate(cfg.weak_members)
    ]
    return [("strong", cfg.strong), *weak]


def check_causal_lm_run(cfg: ExperimentConfig, kind: str, uses: str, weak: bool = True) -> None:
    """Generation and pair runs use causal LMs only (``uses``: what they do with them; ``weak``:
    whether the weak members take part). Options of the classifier pipeline are errors there,
    never silently ignored."""
    models = language_models(cfg) if weak else [("strong", cfg.strong)]
    for where, model in models:
        if model.model == "tfidf":
            raise ValueError(f"{where}.model: tfidf cannot {uses}; use a causal LM")
        if model.genft.enabled:
            raise ValueError(f"{where}.genft: not used by {kind} tasks; remove it")
        if model.fsdp and where != "strong" and kind == "pairs":
            raise ValueError(f"{where}.fsdp: weak judges only score replies; remove it")
    if cfg.ladder:
        raise ValueError("ladder: bootstrapping ladders are for classification tasks only")
    if cfg.split.balance:
        raise ValueError(f"split.balance: {kind} tasks have no classes to balance")
