"""The row every recipe's ``rows`` returns: one model of one run, in the columns every kind shares.

``metric``/``score`` name and hold the number the kind reports first (classification: accuracy;
generation: its task metric, e.g. slu_f1; pairs: the share of test pairs ranked right), so a table
over runs of different kinds still has one comparable column.
"""

from __future__ import annotations

import json
import math
from typing import Any

CLASSIFIER_METRICS = (
    "accuracy",
    "auroc",
    "ece",
    "pgr",
    "agreement",
    "agreement_weak_right",
    "agreement_weak_wrong",
)


def model_row(
    role: str, method: str, block: dict[str, Any], metric: str = "accuracy", **extra: Any
) -> dict[str, Any]:
    """A model's row from its results block; every scalar of the block is kept as a column."""
    ci = block.get(f"{metric}_ci") or [math.nan, math.nan]
    pgr_ci = block.get("pgr_ci") or [math.nan, math.nan]
    per_seed = block.get("pgr_per_seed", [block["pgr"]] if "pgr" in block else [])
    scalars = {
        key: float(value)
        for key, value in block.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return {
        **{name: math.nan for name in CLASSIFIER_METRICS},
        **scalars,
        "role": role,
        "method": method,
        "metric": metric,
        "score": _number(block.get(metric)),
        "score_ci_low": _number(ci[0]),
        "score_ci_high": _number(ci[1]),
        "accuracy_sd": _number(block.get("accuracy_sd")),
        "pgr_ci_low": _number(pgr_ci[0]),
        "pgr_ci_high": _number(pgr_ci[1]),
        "pgr_per_seed": json.dumps([_finite(v) for v in per_seed]),
        **extra,
    }


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _finite(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
