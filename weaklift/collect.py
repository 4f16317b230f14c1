"""Collected results: every run under an output folder as flat tables (Parquet and CSV).

``results``: one row per (run, model) — the weak supervisor (and each member of an ensemble), the
ceiling, every student and control; for pair runs the reference and each policy — with the config
fields that vary across the runs, the sizes of the weak and strong models, the kind's headline
``metric`` and ``score`` (with its CI), accuracy, AUROC, ECE, PGR and its CI, agreement (overall
and split by whether the supervisor was right), every other metric of the run, the seed and the
row's training time.
``curves``: one row per optimizer step of every training stage (loss, accuracy against the
targets, confidence weight). ``calibration``: reliability-diagram bins per model.
A report reads these tables, never a model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from weaklift.errors import WeakliftError
from weaklift.recipes.rows import CLASSIFIER_METRICS
from weaklift.runner import STAGES_FILE
from weaklift.store import stable_hash

METRICS = CLASSIFIER_METRICS  # the classifier columns every row has (NaN where unmeasured)
TRAINING_STAGES = ("weak_model", "ceiling", "student", "rung")


@dataclass(frozen=True)
class Run:
    """One run folder: its results.json and (when recorded) its stages.json."""

    name: str
    results: dict[str, Any]
    stages: list[dict[str, Any]]


def load_runs(directory: str | Path, run_dirs: list[str] | None = None) -> list[Run]:
    """Every ``runs/*/results.json`` under ``directory`` (an output_dir), or the given run folders."""
    directory = Path(directory)
    if run_dirs is None:
        if not directory.is_dir():
            raise WeakliftError(f"{directory} is not a folder", "pass a sweep's output_dir")
        folders = sorted(p.parent for p in (directory / "runs").glob("*/results.json"))
    else:
        folders = [Path(d) for d in run_dirs]
    runs = []
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        stages_path = folder / STAGES_FILE
        stages = json.loads(stages_path.read_text())["stages"] if stages_path.is_file() else []
        runs.append(Run(folder.name, results, stages))
    if not runs:
        raise WeakliftError(
            f"no results.json under {directory / 'runs'}",
            "run `weaklift run` or `weaklift sweep` with this output_dir first",
        )
    return runs


def results_table(runs: list[Run]) -> pd.DataFrame:
    """One row per (run, model); see the module docstring for the columns. The rows of each run
    come from the recipe that wrote it, so classification, generation and pair runs share one
    table (``metric``/``score``: the kind's headline number)."""
    from weaklift.models.size import parameter_count
    from weaklift.recipes import result_rows

    varying = _varying_fields(runs)
    rows = []
    for run in runs:
        res, cfg = run.results, run.results["config"]
        members = _members(cfg)
        base = {
            "run": run.name,
            **{key: _cell(value) for key, value in flatten(cfg).items() if key in varying},
            "task": res["task"],
            "kind": res.get("kind", "classification"),
            "weak": " + ".join(res["models"].get("weak", [])),
            "strong": res["models"]["strong"],
            "weak_params": max(
                (_size(parameter_count, m["model"]) for m in members), default=math.nan
            ),
            "strong_params": _size(parameter_count, cfg["strong"]["model"]),
            "seed": cfg["seed"],
            "seeds": len(res.get("seeds", [cfg["seed"]])),
            "num_test": res.get("num_test", res.get("num_pairs")),
        }
        seconds = _training_seconds(run)
        for row in result_rows(res):
            when = seconds.get((row["role"], row["method"] if row["role"] == "student" else ""))
            rows.append({**base, **row, "train_seconds": math.nan if when is None else when})
    return pd.DataFrame(rows)


def curves_table(runs: list[Run]) -> pd.DataFrame:
    """One row per optimizer step of every training stage of every run."""
    rows = []
    for run in runs:
        labels = _method_labels(run)
        for record in run.stages:
            history = record.get("meta", {}).get("history") or {}
            if record["stage"] not in TRAINING_STAGES or not history.get("step_loss"):
                continue
            method = labels.get(_method_hash(record), "") if record["stage"] == "student" else ""
            weights = history.get("step_confidence_weight") or [None] * len(history["step_loss"])
            for step, (loss, acc, weight) in enumerate(
                zip(history["step_loss"], history["step_target_accuracy"], weights, strict=True)
            ):
                rows.append(
                    {
                        "run": run.name,
                        "stage": record["stage"],
                        "method": method,
                        "model": record["params"].get("model", ""),
                        "key": record["key"],
                        "step": step,
                        "loss": loss,
                        "target_accuracy": acc,
                        "confidence_weight": math.nan if weight is None else weight,
                    }
                )
    columns = ["run", "stage", "method", "model", "key", "step", "loss", "target_accuracy"]
    return pd.DataFrame(rows, columns=[*columns, "confidence_weight"])


def calibration_table(runs: list[Run]) -> pd.DataFrame:
    """Reliability bins (count, mean confidence, accuracy) of the weak model, ceiling and students,
    per seed (a run with several seeds keeps each seed's bins under ``per_seed``)."""
    rows = []
    for run in runs:
        res = run.results
        if res.get("kind", "classification") != "classification":
            continue  # reliability bins are a classifier's
        per_seed = res.get("per_seed") or {str(res["config"]["seed"]): res}
        for seed, block in per_seed.items():
            models = [("weak", "", block["weak"]), ("ceiling", "", block["ceiling"])]
            models += [("student", label, s) for label, s in block["students"].items()]
            for role, method, metrics in models:
                bins = metrics.get("reliability")
                if not bins:
                    continue
                for i, (count, conf, acc) in enumerate(
                    zip(bins["count"], bins["confidence"], bins["accuracy"], strict=True)
                ):
                    rows.append(
                        {
                            "run": run.name,
                            "seed": int(seed),
                            "strong": res["models"]["strong"],
                            "role": role,
                            "method": method,
                            "bin": i,
                            "count": count,
                            "confidence": math.nan if conf is None else conf,
                            "accuracy": math.nan if acc is None else acc,
                        }
                    )
    columns = ["run", "seed", "strong", "role", "method", "bin", "count", "confidence", "accuracy"]
    return pd.DataFrame(rows, columns=columns)


def write_collected(runs: list[Run], out_dir: str | Path) -> dict[str, Path]:
    """results.{parquet,csv}, curves.parquet and calibration.parquet in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    tables = {
        "results": results_table(runs),
        "curves": curves_table(runs),
        "calibration": calibration_table(runs),
    }
    for name, table in tables.items():
        for suffix in ("parquet", "csv") if name == "results" else ("parquet",):
            path = out_dir / f"{name}.{suffix}"
            tmp = path.with_name(f".tmp-{path.name}")
            table.to_parquet(tmp, index=False) if suffix == "parquet" else table.to_csv(
                tmp, index=False
            )
            tmp.replace(path)
            written[f"{name}.{suffix}"] = path
    return written


# --- helpers -------------------------------------------------------------------------------------


def _members(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return cfg["weak"] if isinstance(cfg["weak"], list) else [cfg["weak"]]


def _size(count, model: str) -> float:
    try:
        return count(model)
    except WeakliftError:
        return math.nan


def _method_hash(record: dict[str, Any]) -> str:
    return stable_hash(record["params"].get("method"))


def _method_labels(run: Run) -> dict[str, str]:
    """Cache-key view of each method (as the student stage records it) → the label results use."""
    from weaklift.config import MethodSpec
    from weaklift.methods import method_params

    if run.results.get("kind", "classification") != "classification":
        return {}  # generation and pair students are keyed by other specs
    specs = [MethodSpec(**m) for m in run.results["config"]["methods"]]
    return {stable_hash(method_params(spec)): spec.label for spec in specs}


def _training_seconds(run: Run) -> dict[tuple[str, str], float]:
    """Wall seconds of the training stages behind each row (when they were computed)."""
    labels = _method_labels(run)
    seconds: dict[tuple[str, str], float] = {}
    for record in run.stages:
        took = record.get("meta", {}).get("seconds")
        if took is None:
            continue
        stage = record["stage"]
        if stage in ("weak_model", "weak_labels", "weak_generator"):
            row = ("weak", "")
        elif stage in ("ceiling", "gen_ceiling"):
            row = ("ceiling", "")
        elif stage == "student":
            row = ("student", labels.get(_method_hash(record), ""))
        else:
            continue
        seconds[row] = seconds.get(row, 0.0) + took
    return seconds


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    if isinstance(obj, dict):
        flat: dict[str, Any] = {}
        for key, value in obj.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: obj}


def _cell(value: Any) -> Any:
    """Lists (methods, weak ensembles) as compact JSON so the column stays one type."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list) else value


def _varying_fields(runs: list[Run]) -> list[str]:
    """Config fields whose value differs between runs (output_dir and tracking never count)."""
    flats = [flatten(run.results["config"]) for run in runs]
    keys = sorted({k for flat in flats for k in flat})
    return [
        k
        for k in keys
        if not k.startswith(("output_dir", "tracking"))
        and len({json.dumps(flat.get(k), sort_keys=True) for flat in flats}) > 1
    ]
