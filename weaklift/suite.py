"""``weaklift suite``: the standard suite as one sweep, and what it says across tasks.

The suite is a sweep whose points are tasks: ``configs/suite.yaml`` holds the base config (models,
methods, seeds, controls) and each task's split sizes; the tasks are those of
``weaklift.tasks.suite.SUITE_TASKS`` whose folder exists under the data directory. Across tasks
it reports, per method, the median PGR with a bootstrap CI over tasks, and logconf against xent
as a sign test; per task, the ceiling − weak gap with its paired bootstrap CI, so tasks where the
gap is too small for PGR to mean anything are marked.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from weaklift.config_files import merge_config, parse_overrides, read_yaml_mapping
from weaklift.errors import WeakliftError
from weaklift.sweep import Sweep
from weaklift.tasks.suite import SUITE_TASKS

DEFAULT_SUITE_FILE = "configs/suite.yaml"
SPLIT_FIELDS = ("weak_train", "transfer", "val", "test")


def data_dir(given: str | None = None) -> Path:
    """``--data``, else ``$WEAKLIFT_DATA``, else ``../shared/data``."""
    return Path(given or os.environ.get("WEAKLIFT_DATA") or "../shared/data").expanduser()


def load_suite(
    path: str | Path,
    data: Path,
    tasks: list[str] | None = None,
    overrides: list[str] | None = None,
) -> tuple[Sweep, list[str]]:
    """The suite as a sweep (one zipped axis: task.name, task.path and its split sizes) and the
    names of the requested tasks whose data folder is missing (skipped)."""
    raw = read_yaml_mapping(Path(path), "suite file", DEFAULT_SUITE_FILE)
    sizes = raw.pop("sizes", None)
    if not isinstance(sizes, dict) or not isinstance(sizes.get("default"), dict):
        raise WeakliftError(
            "suite field sizes: must map default (and optionally task names) to split sizes",
            "e.g. sizes: {default: {weak_train: 500, transfer: 500, val: 100, test: 500}}",
        )
    names = tasks or list(SUITE_TASKS)
    unknown = [t for t in names if t not in SUITE_TASKS]
    if unknown:
        raise WeakliftError(
            f"--tasks: {', '.join(unknown)} not in the suite",
            f"choose from {', '.join(SUITE_TASKS)}",
        )
    present = [t for t in names if (data / SUITE_TASKS[t]).is_dir()]
    missing = [t for t in names if t not in present]
    if not present:
        raise WeakliftError(
            f"no suite task has its data folder under {data}",
            "pass --data DIR (or set WEAKLIFT_DATA) to the folder holding sciq/, sst2/, ...",
        )
    base = merge_config(raw, parse_overrides(overrides or []))
    split_override = {k: v for k, v in base.get("split", {}).items() if k in SPLIT_FIELDS}
    rows = [{**sizes["default"], **sizes.get(t, {}), **split_override} for t in present]
    axis: dict[str, list[Any]] = {
        "task.name": present,
        "task.path": [str(data / SUITE_TASKS[t]) for t in present],
    }
    for name in SPLIT_FIELDS:
        axis[f"split.{name}"] = [row[name] for row in rows]
    name = str(base.pop("name", "suite"))
    return Sweep(name=name, base=base, zips=[axis]), missing


def suite_summary(
    table: pd.DataFrame, samples: int = 10_000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """From ``collect``'s results table: per task the gap (with a CI) and each method's PGR;
    per method the median PGR over the tasks whose gap CI is above 0 (elsewhere PGR divides by
    noise) with a bootstrap CI over those tasks; logconf vs xent on every task."""
    per_task = gap_table(table)
    students = table[table["role"] == "student"]
    pgr = students.pivot_table(index="task", columns="method", values="pgr", aggfunc="first")
    per_task = per_task.join(pgr.add_prefix("pgr_"), how="left")
    with_gap = pgr.loc[pgr.index.isin(per_task.index[per_task["gap_ok"]])] if len(per_task) else pgr
    rng = np.random.default_rng(seed)
    medians = []
    for method in pgr.columns:
        values = with_gap[method].dropna().to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        low, high = _bootstrap_median_ci(values, samples, rng)
        median = float(np.median(values)) if len(values) else math.nan
        medians.append(
            {
                "method": method,
                "tasks": len(values),
                "median_pgr": median,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return per_task, pd.DataFrame(medians), sign_test(students, "logconf", "xent")


def gap_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per task: weak and ceiling test accuracy, their gap, the gap's 95% CI (the run's paired
    bootstrap over seeds and test examples: ``ceiling``'s minus_weak_ci columns) and ``gap_ok``
    (CI above 0: PGR there divides by a real gap)."""
    rows = []
    for task, group in table.groupby("task"):
        weak = group.loc[group["role"] == "weak"]
        ceiling = group.loc[group["role"] == "ceiling"]
        if weak.empty or ceiling.empty:
            continue
        w, c = float(weak["score"].iloc[0]), float(ceiling["score"].iloc[0])
        low = float(ceiling.get("minus_weak_ci_low", pd.Series([math.nan])).iloc[0])
        high = float(ceiling.get("minus_weak_ci_high", pd.Series([math.nan])).iloc[0])
        rows.append(
            {"task": task, "weak": w, "ceiling": c, "gap": c - w,
             "gap_ci_low": low, "gap_ci_high": high, "gap_ok": bool(low > 0)}
        )  # fmt: skip
    return pd.DataFrame(rows).set_index("task") if rows else pd.DataFrame()


def sign_test(students: pd.DataFrame, method: str, baseline: str) -> dict[str, Any]:
    """On how many tasks ``method``'s test score beats ``baseline``'s, and the two-sided sign-test
    p-value (ties dropped)."""
    from scipy.stats import binomtest

    scores = students.pivot_table(index="task", columns="method", values="score", aggfunc="first")
    if method not in scores or baseline not in scores:
        return {"method": method, "baseline": baseline, "tasks": 0}
    diff = (scores[method] - scores[baseline]).dropna()
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    p = binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else math.nan
    return {"method": method, "baseline": baseline, "tasks": len(diff), "wins": wins,
            "losses": losses, "ties": len(diff) - wins - losses, "p_value": float(p)}  # fmt: skip


def _bootstrap_median_ci(
    values: np.ndarray, samples: int, rng: np.random.Generator
) -> tuple[float, float]:
    if len(values) < 2:
        return math.nan, math.nan
    draws = rng.choice(values, size=(samples, len(values)), replace=True)
    low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    return float(low), float(high)


def format_summary(per_task: pd.DataFrame, medians: pd.DataFrame, sign: dict[str, Any]) -> str:
    """The summary a person reads at the end of ``weaklift suite``."""
    lines = [f"{'task':<14} {'weak':>6} {'ceil':>6} {'gap':>6} {'gap 95% CI':>16}  PGR per method"]
    methods = [c for c in per_task.columns if c.startswith("pgr_")]
    for task, row in per_task.iterrows():
        flag = "" if row["gap_ok"] else "  (gap CI includes 0: PGR not meaningful)"
        pgrs = "  ".join(f"{m[4:]} {row[m]:.2f}" for m in methods)
        lines.append(
            f"{task:<14} {row['weak']:6.3f} {row['ceiling']:6.3f} {row['gap']:6.3f} "
            f"[{row['gap_ci_low']:6.3f}, {row['gap_ci_high']:6.3f}]  {pgrs}{flag}"
        )
    for _, m in medians.iterrows():
        lines.append(
            f"median PGR {m['method']}: {m['median_pgr']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]"
            f" over the {m['tasks']} task(s) with a gap (bootstrap over tasks)"
        )
    if sign.get("tasks"):
        lines.append(
            f"{sign['method']} vs {sign['baseline']}: wins {sign['wins']}, losses {sign['losses']}, "
            f"ties {sign['ties']} (sign test p = {sign['p_value']:.3g})"
        )
    return "\n".join(lines)
