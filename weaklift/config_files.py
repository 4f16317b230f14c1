"""Reading a config: a YAML file and ``key.sub=value`` overrides, merged once, validated by the
schema (``weaklift.config``) and then by the recipe of the task's kind, before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from weaklift.config import ExperimentConfig
from weaklift.errors import WeakliftError
from weaklift.recipes import recipe_for

MODEL_SIDES = ("weak", "strong")


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


def merge_config(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, nested mappings merged key by key: the one merge of a YAML file
    and its overrides (and of a sweep's base and its points). ``weak: minilm-l6`` plus
    ``weak.max_length=64`` stays minilm-l6 with the new max_length, never the default model."""
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        if isinstance(value, dict) and key in MODEL_SIDES and isinstance(current, str):
            current = {"model": current}  # `weak: tfidf` is shorthand for `weak.model: tfidf`
        if isinstance(value, dict) and key in MODEL_SIDES and isinstance(current, list):
            raise WeakliftError(
                f"override {key}.{next(iter(value))}: {key} is a list of members here",
                f"set the whole list, e.g. {key}=[{{model: a, max_length: 64}}, ...]",
            )
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = merge_config(current, value)
        else:
            merged[key] = value
    return merged


_NOT_RUN_KEYS = {  # top-level keys of the other config files, and the command that reads them
    "grid": "weaklift sweep FILE",
    "zip": "weaklift sweep FILE",
    "only_weaker": "weaklift sweep FILE",
    "sizes": "weaklift suite --suite-file FILE",
}


def _format_validation_error(err: ValidationError) -> str:
    unknown = [e["loc"][0] for e in err.errors() if e["type"] == "extra_forbidden" and e["loc"]]
    for key in unknown:
        if key in _NOT_RUN_KEYS:
            return (
                f"config field {key}: not a run config's key; this file is read by "
                f"`{_NOT_RUN_KEYS[key]}`"
            )
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
    raw = {} if path is None else read_yaml_mapping(path, "config file", "configs/default.yaml")
    return config_from_mapping(merge_config(raw, parse_overrides(overrides or [])))


def read_yaml_mapping(path: str | Path, what: str, example: str) -> dict[str, Any]:
    """A YAML file's top-level mapping (a config or a sweep file); a clear error when the file is
    missing, is not YAML, or holds something else."""
    path = Path(path)
    if not path.is_file():
        raise WeakliftError(f"{what} {path} not found", "pass an existing YAML file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise WeakliftError(f"{what} {path} is not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise WeakliftError(f"{what} {path} must hold a mapping of keys", f"see {example}")
    return raw


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
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise WeakliftError(_format_validation_error(err)) from None
    try:
        recipe = recipe_for(cfg)
        unset = {key: value for key, value in recipe.DEFAULTS.items() if getattr(cfg, key) is None}
        cfg = cfg.model_copy(update=unset)  # seeds and controls: the kind's own defaults
        recipe.check(cfg)
    except ValueError as err:  # a recipe's rule: its message starts with the field's path
        raise WeakliftError(f"config field {err}") from None
    return cfg
