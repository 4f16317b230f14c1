"""What a run hands back and how every recipe writes it: results.json in its run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weaklift.config import ExperimentConfig
from weaklift.store import stable_hash, write_json_atomic


@dataclass(frozen=True)
class Results:
    """What a run produced: the results dict (results.json) and the run folder."""

    data: dict[str, Any]
    run_dir: Path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def save_results(cfg: ExperimentConfig, task_name: str, results: dict[str, Any]) -> Results:
    """results.json under ``runs/<task>-<config hash>/``, written atomically."""
    run_dir = (
        Path(cfg.output_dir)
        / "runs"
        / f"{task_name}-{stable_hash(cfg.model_dump(mode='json'), 10)}"
    )
    write_json_atomic(run_dir / "results.json", results)
    return Results(results, run_dir)
