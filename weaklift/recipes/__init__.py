"""One recipe per experiment kind (torchtune's shape): each module reads top to bottom and owns

- ``DEFAULTS``: the kind's values of fields left unset (``seeds``, ``controls``);
- ``check(cfg)``: the config rules of its kind (ValueError starting with the field's path);
- ``run(cfg, store) -> Results``: the experiment graph, writing results.json one way;
- ``rows(results) -> list[dict]``: one row per model for ``collect``, the report and tracking.

``run_experiment`` (weaklift.pipeline) and the config loader only look the recipe up.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from weaklift.config import ExperimentConfig
from weaklift.recipes import classification, generation, pairs
from weaklift.tasks import task_kind

RECIPES: dict[str, ModuleType] = {
    "classification": classification,
    "preference": classification,  # reward models: pairwise classifiers through the same graph
    "generation": generation,
    "pairs": pairs,
}


def recipe_for(cfg: ExperimentConfig) -> ModuleType:
    """The recipe of the configured task's kind (ValueError when task.kind contradicts it)."""
    return RECIPES[task_kind(cfg.task)]


def recipe_of_results(results: dict[str, Any]) -> ModuleType:
    """The recipe that wrote a results.json (classification runs before 0.3 carry no kind)."""
    return RECIPES[results.get("kind", "classification")]


def result_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model of a run's results, whatever its kind."""
    return recipe_of_results(results).rows(results)
