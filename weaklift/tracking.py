"""Experiment trackers: log finished runs to MLflow (``tracking: mlflow``).

Runs are logged after they finish, from the process that launched them (never from workers), so
every executor logs the same way. Each run gets its config as params, every number of
results.json as a metric (``weak/accuracy``, ``student/xent/pgr``, ...), the per-step training
curves as stepped metrics and its report.html as an artifact. A sweep's runs are nested under one
parent run named after the sweep (tag ``weaklift.sweep``), which holds the sweep's report.
The default store is a local file store ``<output_dir>/mlruns``; ``tracking.uri`` picks any other.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from weaklift.collect import flatten
from weaklift.errors import WeakliftError
from weaklift.runner import STAGES_FILE

_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. /]")
SCORE_ALIASES = ("score", "score_ci_low", "score_ci_high")  # the row's metric again, under its name
CURVES = ("step_loss", "step_target_accuracy", "step_confidence_weight")


def metric_name(*parts: str) -> str:
    """``student/logconf(alpha=0.75)/pgr`` → ``student/logconf_alpha_0.75_/pgr`` (MLflow's charset)."""
    return "/".join(_UNSAFE.sub("_", p) for p in parts)


def results_metrics(results: dict[str, Any]) -> dict[str, float]:
    """Every finite number of a run's rows (one per model, from its recipe) under a
    slash-separated name: ``weak/accuracy``, ``student/xent/pgr``, ``student/xent/pgr_ci_low``."""
    from weaklift.recipes import result_rows

    metrics = {}
    for row in result_rows(results):
        single = row["role"] in ("weak", "ceiling", "reference")
        prefix = (row["role"],) if single else (row["role"], row["method"])
        for key, value in row.items():
            if key in ("role", "method", "metric", *SCORE_ALIASES) or isinstance(value, bool):
                continue
            if isinstance(value, int | float) and math.isfinite(value):
                metrics[metric_name(*prefix, key)] = float(value)
    return metrics


def log_runs(
    tracking,
    runs: list[tuple[str | Path, dict[str, Any]]],
    default_experiment: str,
    sweep_name: str | None = None,
    report: str | Path | None = None,
) -> None:
    """Log each (run folder, values the sweep set) as an MLflow run; nested under a sweep parent."""
    try:
        import mlflow
    except ImportError:
        raise WeakliftError(
            "tracking: mlflow needs MLflow", 'pip install "weaklift[mlflow]"'
        ) from None
    first_dir = Path(runs[0][0])
    uri = tracking.uri or (first_dir.parent.parent.resolve() / "mlruns").as_uri()
    if uri.startswith("file:"):
        # MLflow 3 refuses its (deprecated) file store unless asked; it is the offline default here.
        # A database store (tracking.uri=sqlite:///...) needs the full `mlflow` package.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(tracking.experiment or default_experiment)
    if sweep_name is None:
        for run_dir, values in runs:
            _log_one(mlflow, Path(run_dir), values, nested=False)
        return
    with mlflow.start_run(run_name=sweep_name, tags={"weaklift.sweep": sweep_name}):
        if report is not None:
            mlflow.log_artifact(str(report))
        for run_dir, values in runs:
            _log_one(mlflow, Path(run_dir), values, nested=True, sweep_name=sweep_name)


def _log_one(mlflow, run_dir: Path, values: dict[str, Any], nested: bool, sweep_name=None) -> None:
    from mlflow.entities import Metric

    results = json.loads((run_dir / "results.json").read_text())
    name = " ".join(f"{k}={v}" for k, v in values.items()) or run_dir.name
    tags = {"weaklift.run_dir": str(run_dir)}
    if sweep_name:
        tags["weaklift.sweep"] = sweep_name
    with mlflow.start_run(run_name=name, nested=nested, tags=tags) as active:
        params = {
            k: json.dumps(v) if isinstance(v, list | dict) else v
            for k, v in flatten(results["config"]).items()
        }
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(results_metrics(results))
        curves = []
        stages_path = run_dir / STAGES_FILE
        records = json.loads(stages_path.read_text())["stages"] if stages_path.is_file() else []
        for record in records:
            history = record.get("meta", {}).get("history") or {}
            for curve in CURVES:
                for step, value in enumerate(history.get(curve) or []):
                    if value is None or (isinstance(value, float) and math.isnan(value)):
                        continue
                    key = metric_name("curve", record["stage"], record["key"][:8], curve)
                    curves.append(Metric(key, float(value), 0, step))
        client = mlflow.MlflowClient()
        for start in range(0, len(curves), 1000):  # MLflow's batch limit
            client.log_batch(active.info.run_id, metrics=curves[start : start + 1000])
        if (run_dir / "report.html").is_file():
            mlflow.log_artifact(str(run_dir / "report.html"))
        mlflow.log_artifact(str(run_dir / "results.json"))
