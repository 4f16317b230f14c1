"""Pieces every part of the schema shares: strict models and method specs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Unknown keys are errors (a misspelt field never silently falls back to its default)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MethodSpec(Strict):
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


def method_specs(value: Any) -> Any:
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
