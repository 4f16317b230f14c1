"""Sweeps: a base config plus a grid, expanded into experiments that share one artifact store.

A sweep file is an ordinary config with three extra keys::

    grid: {weak.model: [tfidf, minilm-l6], strong.model: [minilm-l6, gemma3-270m], seed: [0, 1]}
    zip: {train.probe.lr: [1e-3, 1e-2], train.probe.epochs: [30, 10]}   # varied together
    only_weaker: true                                                 # skip weak >= strong

``grid`` is a cartesian product over any (dotted) config fields; ``zip`` adds one axis whose lists
move together (a list of such mappings adds several axes). Points are validated before any work.
With ``only_weaker`` a point whose weak model is not smaller (parameter count; tfidf smallest)
than its strong model is skipped, and the skip is reported.

Executors only decide where a point runs: in this process, in a pool of worker processes, or as
Ray tasks. Every point goes through the same store, so shared stages are computed once, and a
sweep started again after a kill computes only what is missing.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from weaklift.config import ExperimentConfig
from weaklift.config_files import (
    config_from_mapping,
    merge_config,
    parse_overrides,
    read_yaml_mapping,
)
from weaklift.errors import WeakliftError
from weaklift.runner import PointOutcome, run_point
from weaklift.store import Artifact, ArtifactStore

log = logging.getLogger("weaklift")

SWEEP_KEYS = ("name", "grid", "zip", "only_weaker")
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class SweepPoint:
    """One experiment of the sweep: the values it sets and the validated config."""

    index: int
    values: dict[str, Any]  # dotted field -> value, in grid order
    raw: dict[str, Any]  # the mapping the config was validated from (sent to workers)
    config: ExperimentConfig

    @property
    def name(self) -> str:
        return describe(self.values)


@dataclass(frozen=True)
class SkippedPoint:
    values: dict[str, Any]
    reason: str

    @property
    def name(self) -> str:
        return describe(self.values)


@dataclass
class Sweep:
    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zips: list[dict[str, list[Any]]] = field(default_factory=list)
    only_weaker: bool = False

    def expand(self) -> tuple[list[SweepPoint], list[SkippedPoint]]:
        """Every combination, validated; the ones only_weaker rules out come back as skipped."""
        axes = [[{key: v} for v in values] for key, values in self.grid.items()]
        axes += [
            [dict(zip(group, combo, strict=True)) for combo in zip(*group.values(), strict=True)]
            for group in self.zips
        ]
        points, skipped = [], []
        for combo in itertools.product(*axes):
            values = {k: v for part in combo for k, v in part.items()}
            raw = merge_config(self.base, _nested(values))
            where = describe(values)
            try:
                cfg = config_from_mapping(raw)
            except WeakliftError as err:
                raise WeakliftError(f"sweep point {where}: {err}") from None
            reason = _weaker_violation(cfg) if self.only_weaker else None
            if reason:
                skipped.append(SkippedPoint(values, reason))
            else:
                points.append(SweepPoint(len(points), values, raw, cfg))
        if not points:
            raise WeakliftError(
                f"sweep {self.name}: every point was skipped",
                "check grid and only_weaker (weak must be smaller than strong)",
            )
        return points, skipped


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> Sweep:
    """Read a sweep file; ``overrides`` (key=value) change its base config."""
    path = Path(path)
    raw = read_yaml_mapping(path, "sweep file", "configs/sweep_facts.yaml")
    grid = raw.pop("grid", None) or {}
    zips = raw.pop("zip", None) or []
    zips = [zips] if isinstance(zips, dict) else zips
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise WeakliftError(
            "sweep field grid: must map config fields to non-empty lists",
            "e.g. grid: {seed: [0, 1, 2]}",
        )
    for i, group in enumerate(zips):
        lengths = {len(v) for v in group.values()} if isinstance(group, dict) else set()
        if len(lengths) != 1 or not all(isinstance(v, list) for v in group.values()):
            raise WeakliftError(
                f"sweep field zip.{i}: must map fields to lists of one common length",
                "e.g. zip: {train.probe.lr: [1e-3, 1e-2], train.probe.epochs: [30, 10]}",
            )
    repeated = set(grid) & {k for g in zips for k in g}
    if repeated:
        raise WeakliftError(f"sweep fields {sorted(repeated)} are both in grid and zip", "keep one")
    only_weaker = raw.pop("only_weaker", False)
    if not isinstance(only_weaker, bool):
        raise WeakliftError("sweep field only_weaker: must be true or false")
    name = str(raw.pop("name", path.stem))
    base = merge_config(raw, parse_overrides(overrides or []))
    return Sweep(name=name, base=base, grid=grid, zips=zips, only_weaker=only_weaker)


# --- executors -------------------------------------------------------------------------------------


def run_sweep(
    points: list[SweepPoint],
    executor: str = "local",
    workers: int = 1,
    threads: int | None = None,
    address: str | None = None,
) -> list[tuple[SweepPoint, PointOutcome]]:
    """Run every point; a failed point is reported in its outcome and the others still run."""
    if executor not in EXECUTORS:
        raise WeakliftError(f"unknown executor {executor!r}", f"choose one of {EXECUTORS}")
    if workers < 1:
        raise WeakliftError("--workers must be at least 1")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    bar = tqdm(total=len(points), desc="sweep", unit="point")
    try:
        if executor == "ray":
            return _run_ray(points, threads, address, bar)
        if workers == 1:
            return [(p, _run_here(p, threads, bar)) for p in points]
        return _run_pool(points, workers, threads, bar)
    finally:
        bar.close()


def _run_here(point: SweepPoint, threads: int, bar: tqdm) -> PointOutcome:
    try:
        outcome = run_point(point.raw, threads)
    except Exception as err:  # noqa: BLE001 - reported per point, the sweep goes on
        log.exception("sweep point %s failed", point.name)
        outcome = PointOutcome(run_dir="", seconds=0.0, error=f"{type(err).__name__}: {err}")
    _done(point, outcome, bar)
    return outcome


def _run_pool(
    points: list[SweepPoint], workers: int, threads: int, bar: tqdm
) -> list[tuple[SweepPoint, PointOutcome]]:
    """Points in parallel worker processes (spawned: no forked torch state), one store."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    outcomes: dict[int, PointOutcome] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_point, p.raw, threads): p for p in points}
        for future in as_completed(futures):
            point = futures[future]
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001
                outcome = PointOutcome("", 0.0, error=f"{type(err).__name__}: {err}")
            outcomes[point.index] = outcome
            _done(point, outcome, bar)
    return [(p, outcomes[p.index]) for p in points]


def _run_ray(
    points: list[SweepPoint], threads: int, address: str | None, bar: tqdm
) -> list[tuple[SweepPoint, PointOutcome]]:
    """Each point is a Ray task asking for ``threads`` CPUs; the store must be on a shared filesystem.

    Without ``address`` a local Ray instance is started (workers import this very weaklift);
    with one, the cluster's nodes must have weaklift installed and see ``output_dir``.
    """
    try:
        import ray
    except ImportError:
        raise WeakliftError("--executor ray needs Ray", 'pip install "weaklift[ray]"') from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address)
        else:
            package_root = str(Path(__file__).resolve().parent.parent)
            ray.init(
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                runtime_env={"env_vars": {"PYTHONPATH": package_root}},
                log_to_driver=False,
            )
    try:
        task = ray.remote(num_cpus=threads, max_retries=0)(run_point)
        pending = {task.remote(p.raw, threads): p for p in points}
        outcomes: dict[int, PointOutcome] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            point = pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except Exception as err:  # noqa: BLE001 - a RayTaskError wraps the point's error
                outcome = PointOutcome("", 0.0, error=f"{type(err).__name__}: {err}")
            outcomes[point.index] = outcome
            _done(point, outcome, bar)
        return [(p, outcomes[p.index]) for p in points]
    finally:
        if started_here:
            ray.shutdown()


def _done(point: SweepPoint, outcome: PointOutcome, bar: tqdm) -> None:
    bar.update(1)
    if outcome.error:
        bar.write(f"point {point.index + 1} {point.name}: FAILED ({outcome.error.splitlines()[0]})")
    else:
        computed = sum(outcome.executions.values())
        bar.write(
            f"point {point.index + 1} {point.name}: {outcome.seconds:.1f} s, "
            f"{computed} stage(s) computed"
        )


def write_sweep_record(
    sweep: Sweep,
    results: list[tuple[SweepPoint, PointOutcome]],
    skipped: list[SkippedPoint],
    seconds: float,
) -> Path:
    """``<output_dir>/sweeps/<name>.json``: points, their run folders, skips and failures."""
    from weaklift.store import write_json_atomic

    output_dir = Path(results[0][0].config.output_dir)
    record = {
        "name": sweep.name,
        "seconds": round(seconds, 3),
        "points": [
            {
                "values": p.values,
                "run_dir": o.run_dir,
                "seconds": round(o.seconds, 3),
                "executions": o.executions,
                "error": o.error,
            }
            for p, o in results
        ],
        "skipped": [{"values": s.values, "reason": s.reason} for s in skipped],
    }
    path = output_dir / "sweeps" / f"{sweep.name}.json"
    write_json_atomic(path, record)
    return path


# --- dry run -------------------------------------------------------------------------------------


class _Missing(Exception):
    """Raised by the dry-run store at the first stage that does not exist yet."""

    def __init__(self, stage: str):
        super().__init__(stage)
        self.stage = stage


class _LookupOnlyStore:
    """Answers from the store when the artifact exists; stops at the first one that does not.
    Writes nothing: no folder, no lock file (a dry run leaves the output_dir as it found it)."""

    def __init__(self, store: ArtifactStore):
        self.store = store
        self.root = store.root
        self.found: list[str] = []

    @property
    def executions(self) -> Counter[str]:
        return Counter()  # a dry run computes nothing

    def get_or_compute(self, stage, version, params, upstream, compute) -> Artifact:
        artifact = self.store.lookup(stage, version, params, upstream)
        if artifact is None:
            raise _Missing(stage)
        self.found.append(stage)
        return artifact

    def artifacts(self, stage: str, version: int, params: dict[str, Any]) -> list[Artifact]:
        return self.store.artifacts(stage, version, params)


def existing_stages(point: SweepPoint) -> tuple[list[str], str | None]:
    """Which stages of this point already exist (in pipeline order), and the first missing one."""
    import tempfile

    from weaklift.pipeline import run_experiment

    root = Path(point.config.output_dir) / "artifacts"
    store = _LookupOnlyStore(ArtifactStore(root, create=False))
    with tempfile.TemporaryDirectory(prefix="weaklift-dry-run-") as scratch:
        # A complete point writes its results.json into the scratch folder, never the sweep's.
        cfg = point.config.model_copy(update={"output_dir": scratch})
        try:
            run_experiment(cfg, store)
        except _Missing as missing:
            return store.found, missing.stage
    return store.found, None


# --- helpers -------------------------------------------------------------------------------------


def _weaker_violation(cfg: ExperimentConfig) -> str | None:
    from weaklift.models.size import format_count, parameter_count

    weak = max(parameter_count(m.model) for m in cfg.weak_members)
    strong = parameter_count(cfg.strong.model)
    if weak < strong:
        return None
    return (
        f"weak {'+'.join(m.model for m in cfg.weak_members)} ({format_count(weak)}) is not "
        f"smaller than strong {cfg.strong.model} ({format_count(strong)})"
    )


def _nested(values: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in values.items():
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def describe(values: dict[str, Any]) -> str:
    """``weak.model=tfidf strong.model=minilm-l6 seed=0``: how a point is named everywhere."""
    return " ".join(f"{k}={_short(v)}" for k, v in values.items()) or "base"


def _short(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
