"""Run one experiment and record what it touched: the unit both `weaklift run` and sweeps execute.

``RecordingStore`` wraps the artifact store without changing it: every stage the pipeline asks for
is listed (stage, key, whether this process computed it) and every stage it computes gets its wall
time in its manifest's meta. The list is written beside results.json as ``stages.json``, which is
what `weaklift collect` reads for stage timings and per-step training curves.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weaklift import distributed
from weaklift.store import Artifact, ArtifactStore, write_json_atomic

log = logging.getLogger("weaklift")

STAGES_FILE = "stages.json"


class RecordingStore:
    """An ArtifactStore that remembers every artifact handed out and times every computation."""

    def __init__(self, root: Path):
        self.root = root
        self._store: ArtifactStore | None = None
        self.records: list[dict[str, Any]] = []

    @property
    def store(self) -> ArtifactStore:
        """Created on first use, so a run that fails on bad input leaves no output_dir behind."""
        if self._store is None:
            self._store = ArtifactStore(self.root)
        return self._store

    @property
    def executions(self) -> Counter[str]:
        return self.store.executions

    def get_or_compute(
        self,
        stage: str,
        version: int,
        params: dict[str, Any],
        upstream: dict[str, str],
        compute: Callable[[Path], dict[str, Any] | None],
    ) -> Artifact:
        computed = False

        def timed(out: Path) -> dict[str, Any]:
            nonlocal computed
            computed = True
            start = time.perf_counter()
            meta = compute(out) or {}
            return {**meta, "seconds": round(time.perf_counter() - start, 3)}

        artifact = self.store.get_or_compute(stage, version, params, upstream, timed)
        self.records.append(
            {
                "stage": stage,
                "key": artifact.key,
                "computed": computed,
                "params": params,
                "meta": artifact.meta,
            }
        )
        return artifact

    def artifacts(self, stage: str, version: int, params: dict[str, Any]) -> list[Artifact]:
        return self.store.artifacts(stage, version, params)


@dataclass
class PointOutcome:
    """What running one experiment produced; plain data so it crosses process and Ray boundaries."""

    run_dir: str
    seconds: float
    executions: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def run_recorded(cfg, threads: int | None = None) -> tuple[Any, PointOutcome]:
    """Run ``cfg`` through the pipeline on its output_dir's store; write stages.json beside results."""
    from weaklift.pipeline import run_experiment

    if threads:
        import torch

        torch.set_num_threads(threads)
    store = RecordingStore(Path(cfg.output_dir) / "artifacts")
    start = time.perf_counter()
    results = run_experiment(cfg, store)
    seconds = time.perf_counter() - start
    if distributed.is_main():
        write_json_atomic(
            results.run_dir / STAGES_FILE, {"seconds": round(seconds, 3), "stages": store.records}
        )
    outcome = PointOutcome(
        run_dir=str(results.run_dir), seconds=seconds, executions=dict(store.executions)
    )
    return results, outcome


def run_point(raw: dict[str, Any], threads: int | None = None) -> PointOutcome:
    """Worker entry point (a process of the pool, or a Ray task): validate, run, report back.

    Takes the point's raw mapping rather than a config object, so it pickles anywhere.
    """
    from weaklift.config_files import config_from_mapping

    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    cfg = config_from_mapping(raw)
    _, outcome = run_recorded(cfg, threads)
    return outcome
