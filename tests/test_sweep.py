"""Sweeps with tiny random models: grid expansion, skips, reuse, resume after a kill, workers, Ray."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.test_pipeline import FILLER, NEGATIVE, POSITIVE, _write_task
from tests.tiny_models import make_tiny_model
from weaklift.cli import main
from weaklift.collect import METRICS, load_runs, results_table, write_collected
from weaklift.errors import WeakliftError
from weaklift.models.size import parameter_count
from weaklift.sweep import Sweep, existing_stages, load_sweep, run_sweep


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two tiny backbones of different sizes (llama 22,784 < bert 24,512 parameters) and a task."""
    root = tmp_path_factory.mktemp("sweep")
    texts = [" ".join(POSITIVE + NEGATIVE + FILLER)]
    small = make_tiny_model(root / "small", arch="llama", texts=texts)
    large = make_tiny_model(root / "large", arch="bert", texts=texts)
    assert parameter_count(str(small)) < parameter_count(str(large))
    data = _write_task(root / "reviews.jsonl", n=120)
    return {"small": str(small), "large": str(large), "data": str(data)}


def _base(tiny, out: Path) -> dict:
    return {
        "task": {
            "name": "file",
            "path": tiny["data"],
            "template": "Review: {review}",
            "label_column": "sentiment",
        },
        "methods": ["xent", "logconf"],
        "split": {"weak_train": 30, "transfer": 30, "val": 20, "test": 30},
        "train": {"probe": {"epochs": 3}},
        "bootstrap_samples": 20,
        "seeds": 1,  # one seed per point: the sweep's grid varies `seed`
        "controls": False,
        "output_dir": str(out),
    }


def _manifests(out: Path) -> Counter:
    """Artifacts on disk per stage: what the store holds, however many processes wrote it."""
    return Counter(p.parent.parent.name for p in (out / "artifacts").glob("*/*/manifest.json"))


def _numbers(out: Path) -> pd.DataFrame:
    """Every metric of every row, in a store-independent order (run folder names differ)."""
    columns = ["weak", "strong", "seed", "role", "method", *METRICS]
    rows = results_table(load_runs(out))[columns]
    return rows.sort_values(columns[:5]).reset_index(drop=True)


def _executions(outcomes) -> Counter:
    total: Counter = Counter()
    for _, outcome in outcomes:
        total.update(outcome.executions)
    return total


# --- grid expansion --------------------------------------------------------------------------------


def test_grid_is_a_cartesian_product_with_zipped_axes_and_weaker_only_skips(tiny, tmp_path):
    sweep = Sweep(
        name="t",
        base=_base(tiny, tmp_path),
        grid={
            "weak.model": ["tfidf", tiny["small"]],
            "strong.model": [tiny["small"], tiny["large"]],
        },
        zips=[{"train.probe.lr": [0.001, 0.01], "train.probe.epochs": [3, 7]}],
        only_weaker=True,
    )
    points, skipped = sweep.expand()
    # 2 weak x 2 strong x 2 zipped settings = 8; small → small is not weaker: 2 skipped.
    assert len(points) == 6 and len(skipped) == 2
    assert all(s.values["weak.model"] == s.values["strong.model"] == tiny["small"] for s in skipped)
    assert "not smaller than strong" in skipped[0].reason
    pairs = [(p.config.weak.model, p.config.strong.model) for p in points]
    assert pairs == [
        ("tfidf", tiny["small"]),
        ("tfidf", tiny["small"]),
        ("tfidf", tiny["large"]),
        ("tfidf", tiny["large"]),
        (tiny["small"], tiny["large"]),
        (tiny["small"], tiny["large"]),
    ]
    # Zipped fields move together, never crossed: lr 1e-3 always with 3 epochs, 1e-2 with 7.
    assert {(p.config.train.probe.lr, p.config.train.probe.epochs) for p in points} == {
        (0.001, 3),
        (0.01, 7),
    }
    assert [p.index for p in points] == list(range(6))
    assert all(p.config.methods[1].name == "logconf" for p in points)  # the base is kept


def test_without_only_weaker_nothing_is_skipped(tiny, tmp_path):
    sweep = Sweep(
        "t", _base(tiny, tmp_path), grid={"strong.model": [tiny["small"]], "seed": [0, 1]}
    )
    points, skipped = sweep.expand()
    assert [p.config.seed for p in points] == [0, 1] and not skipped


def test_tfidf_counts_as_the_smallest_model_and_zoo_sizes_are_ordered():
    assert parameter_count("tfidf") == 0
    sizes = [parameter_count(m) for m in ("minilm-l6", "smollm2-135m", "gemma3-270m")]
    assert 0 < sizes[0] < sizes[1] < sizes[2]


def test_local_parameter_count_matches_the_loaded_model(tiny):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny["large"])
    assert parameter_count(tiny["large"]) == sum(p.numel() for p in model.parameters())


def test_sweep_file_errors_name_the_field(tiny, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        json.dumps({**_base(tiny, tmp_path), "zip": {"seed": [0, 1], "split.test": [5]}})
    )
    with pytest.raises(WeakliftError, match="zip.0: must map fields to lists of one common length"):
        load_sweep(path)
    path.write_text(json.dumps({**_base(tiny, tmp_path), "grid": {"split.test": [0]}}))
    with pytest.raises(WeakliftError, match=r"sweep point split.test=0: config field split.test"):
        load_sweep(path).expand()
    path.write_text(
        json.dumps({**_base(tiny, tmp_path), "grid": {"seed": [0]}, "zip": {"seed": [1]}})
    )
    with pytest.raises(WeakliftError, match="both in grid and zip"):
        load_sweep(path)


def test_cli_sweep_bad_input_is_one_line_and_exit_2(tiny, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps({**_base(tiny, tmp_path), "grid": {"seed": 3}}))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "grid: must map config fields to non-empty lists" in err


# --- running, reuse, collection --------------------------------------------------------------------


def _three_points(tiny, out: Path):
    sweep = Sweep(
        "t",
        _base(tiny, out),
        grid={
            "weak.model": ["tfidf", tiny["small"]],
            "strong.model": [tiny["large"]],
            "seed": [0, 1],
        },
    )
    points, _ = sweep.expand()
    return points[:3]  # tfidf seeds 0 and 1, small seed 0


def test_sweep_collects_one_row_per_point_and_method_and_a_rerun_trains_nothing(tiny, tmp_path):
    points = _three_points(tiny, tmp_path)
    outcomes = run_sweep(points, threads=1)
    assert not any(o.error for _, o in outcomes)
    first = _executions(outcomes)
    # Shared across points: one TF-IDF weak model per seed and one ceiling per seed.
    assert first["ceiling"] == 2 and first["student"] == 6 and first["evaluation"] == 3
    assert first == _manifests(tmp_path)

    again = run_sweep(points, threads=1)
    assert sum(_executions(again).values()) == 0  # a second invocation trains nothing

    rows = results_table(load_runs(tmp_path))
    students = rows[rows.role == "student"]
    assert len(students) == 3 * 2 and len(rows[rows.role == "ceiling"]) == 3
    assert {"weak.model", "seed"} <= set(rows.columns)  # the fields that vary
    for (point, outcome), method in [(po, m) for po in outcomes for m in ("xent", "logconf")]:
        results = json.loads((Path(outcome.run_dir) / "results.json").read_text())
        row = students[(students.run == Path(outcome.run_dir).name) & (students.method == method)]
        assert len(row) == 1
        row = row.iloc[0]
        assert row["weak.model"] == point.config.weak.model and row.seed == point.config.seed
        expected = results["students"][method]
        assert row.accuracy == expected["accuracy"] and row.agreement == expected["agreement"]
        assert [row.pgr_ci_low, row.pgr_ci_high] == expected["pgr_ci"]
        weak, ceiling = results["weak"]["accuracy"], results["ceiling"]["accuracy"]
        if weak != ceiling:  # PGR by hand from the reported accuracies
            assert row.pgr == pytest.approx((expected["accuracy"] - weak) / (ceiling - weak))
        assert row.train_seconds > 0

    written = write_collected(load_runs(tmp_path), tmp_path / "tables")
    parquet = pd.read_parquet(written["results.parquet"])
    csv = pd.read_csv(written["results.csv"])
    assert len(parquet) == len(csv) == len(rows)
    assert list(parquet[parquet.role == "student"].accuracy) == list(students.accuracy)


class _Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the sweep catches it."""


def test_a_sweep_killed_mid_point_resumes_with_only_the_missing_stages(tiny, tmp_path, monkeypatch):
    import weaklift.recipes.classification as pipeline

    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    clean = _executions(run_sweep(_three_points(tiny, clean_dir), threads=1))

    real_train = pipeline.train_stage
    students = []

    def dies_at_third_student(ctx, req):
        if req.stage == "student":
            students.append(req)
            if len(students) == 3:  # point 2, first student: mid-point
                raise _Killed
        return real_train(ctx, req)

    monkeypatch.setattr(pipeline, "train_stage", dies_at_third_student)
    with pytest.raises(_Killed):
        run_sweep(_three_points(tiny, killed_dir), threads=1)
    before = _manifests(killed_dir)
    assert 0 < sum(before.values()) < sum(clean.values())
    assert not list((killed_dir / "artifacts").glob("*/.tmp-*"))  # nothing half-written

    monkeypatch.setattr(pipeline, "train_stage", real_train)
    points = _three_points(tiny, killed_dir)
    found, missing = existing_stages(points[1])
    assert missing == "student" and "ceiling" in found  # --dry-run shows where it stopped
    resumed = _executions(run_sweep(points, threads=1))
    assert before + resumed == clean  # exactly the missing stages, nothing twice
    assert resumed["student"] == 4 and resumed["splits"] == 0

    pd.testing.assert_frame_equal(_numbers(killed_dir), _numbers(clean_dir))


def test_a_dry_run_writes_nothing_neither_on_a_new_nor_on_a_half_done_store(tiny, tmp_path):
    fresh = tmp_path / "fresh"
    found, missing = existing_stages(_three_points(tiny, fresh)[0])
    assert (found, missing) == ([], "splits") and not fresh.exists()
    done = tmp_path / "done"
    run_sweep(_three_points(tiny, done)[:1], threads=1)
    before = sorted(p.relative_to(done) for p in done.rglob("*"))
    found, missing = existing_stages(_three_points(tiny, done)[1])  # another seed: splits differ
    assert missing == "splits"
    assert sorted(p.relative_to(done) for p in done.rglob("*")) == before  # no folder, no lock


def test_two_workers_on_one_store_compute_each_stage_once(tiny, tmp_path):
    """The store's per-key locks keep two worker processes from computing a shared stage twice."""
    base = {**_base(tiny, tmp_path), "weak": {"model": "tfidf"}}
    sweep = Sweep("t", base, grid={"strong.model": [tiny["small"], tiny["large"]]})
    points, _ = sweep.expand()  # both share splits, the TF-IDF weak model and its labels
    outcomes = run_sweep(points, workers=2, threads=1)
    assert not any(o.error for _, o in outcomes)
    counted = _executions(outcomes)  # summed over both worker processes
    assert counted == _manifests(tmp_path)
    assert counted["splits"] == 1 and counted["weak_model"] == 1


def test_ray_executor_gives_the_local_numbers(tiny, tmp_path):
    ray = pytest.importorskip("ray", reason="ray not installed (pip install weaklift[ray])")
    points_local = _three_points(tiny, tmp_path / "local")[:2]
    points_ray = _three_points(tiny, tmp_path / "ray")[:2]
    run_sweep(points_local, threads=1)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent.parent)}})  # fmt: skip
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"ray cannot start in this sandbox: {err}")
    try:
        outcomes = run_sweep(points_ray, executor="ray", threads=1)
    finally:
        ray.shutdown()
    assert not any(o.error for _, o in outcomes)
    assert _executions(outcomes) == _manifests(tmp_path / "ray")  # counted inside Ray workers
    pd.testing.assert_frame_equal(_numbers(tmp_path / "ray"), _numbers(tmp_path / "local"))


def test_a_point_with_several_seeds_is_one_row_per_model_with_its_per_seed_pgr(tiny, tmp_path):
    from weaklift.collect import calibration_table

    base = {**_base(tiny, tmp_path), "seeds": 2, "weak": "tfidf", "strong": tiny["large"]}
    (point,), _ = Sweep("t", base).expand()
    ((_, outcome),) = run_sweep([point], threads=1)
    results = json.loads((Path(outcome.run_dir) / "results.json").read_text())
    runs = load_runs(tmp_path)
    rows = results_table(runs)
    students = rows[rows.role == "student"].set_index("method")
    assert len(students) == 2 and (rows.seeds == 2).all()
    for method in ("xent", "logconf"):
        expected = results["students"][method]
        assert students.loc[method, "accuracy"] == expected["accuracy"]  # the seed mean
        per_seed = json.loads(students.loc[method, "pgr_per_seed"])
        assert per_seed == [None if v != v else v for v in expected["pgr_per_seed"]]
    calibration = calibration_table(runs)
    assert sorted(calibration.seed.unique()) == results["seeds"]
