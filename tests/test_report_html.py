"""The HTML report (every figure, captions, sortable table), `weaklift run`'s report, MLflow, curves."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_sweep import _base, tiny  # noqa: F401  (module fixture)
from weaklift.cli import main
from weaklift.collect import curves_table, load_runs, results_table
from weaklift.figures import tick
from weaklift.methods import Logconf, Xent
from weaklift.methods.base import soft_cross_entropy
from weaklift.models.classifier import LinearHead
from weaklift.report_html import FIGURE_IDS, write_report
from weaklift.sweep import Sweep, run_sweep
from weaklift.training.batches import FeatureBatcher
from weaklift.training.classifier import LoopConfig, train_classifier


@pytest.fixture(scope="module")
def swept(tiny, tmp_path_factory):  # noqa: F811
    """A 2 x 2 tiny sweep (two weak/strong pairs x two seeds), already run."""
    out = tmp_path_factory.mktemp("report")
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
    outcomes = run_sweep(points, threads=1)
    assert not any(o.error for _, o in outcomes)
    return out


def _figures(page: str) -> dict[str, tuple[bytes, str]]:
    found = re.findall(
        r"<figure id='fig-([a-z_]+)'>.*?src='data:image/png;base64,([^']+)'>"
        r"<figcaption>(.*?)</figcaption>",
        page,
        flags=re.S,
    )
    return {fig_id: (base64.b64decode(data), caption) for fig_id, data, caption in found}


def test_report_holds_every_figure_with_a_caption_and_the_sortable_table(swept, tmp_path):
    runs = load_runs(swept)
    path = write_report(runs, tmp_path / "report.html")
    page = path.read_text()
    figures = _figures(page)
    assert set(FIGURE_IDS) <= set(figures)
    for png, caption in figures.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000  # a real image
        assert len(caption) > 80  # says what is shown and how it was computed
    assert "ensemble_ladder" not in figures  # no ensemble or ladder in this sweep
    rows = results_table(runs)
    table = page[page.index("<table class='sortable'") : page.index("</table>")]
    assert table.count("<tr>") == len(rows) + 1  # header + one row per (run, model)
    assert "addEventListener('click'" in page  # the sort script
    assert "http://" not in page and "https://" not in page  # self-contained: nothing fetched


def test_collected_curves_are_the_logged_steps(swept):
    runs = load_runs(swept)
    curves = curves_table(runs)
    # 30 transfer rows / batch 64 = 1 step per epoch, 3 epochs, for ceilings and students.
    students = curves[curves.stage == "student"]
    assert set(students.method) == {"xent", "logconf"}
    assert (students.groupby("key").step.count() == 3).all()
    logconf = students[students.method == "logconf"].groupby("step").confidence_weight.first()
    assert list(logconf) == pytest.approx([0.0, 0.5, 0.5])  # c(t) = 0.5·min(1, (t/3)/0.2)
    assert students[students.method == "xent"].confidence_weight.isna().all()


def test_run_writes_its_own_report_and_mlflow_logs_the_results(tiny, tmp_path):  # noqa: F811
    mlflow = pytest.importorskip("mlflow", reason="mlflow not installed (weaklift[mlflow])")
    base = _base(tiny, tmp_path)
    args = [
        "run",
        "task.name=file",
        f"task.path={tiny['data']}",
        "task.template=Review: {review}",
        "task.label_column=sentiment",
        "weak.model=tfidf",
        f"strong.model={tiny['large']}",
        f"output_dir={tmp_path}",
        "train.probe.epochs=3",
        "bootstrap_samples=20",
        "seeds=1",
        "controls=false",
        *[f"split.{k}={v}" for k, v in base["split"].items()],
        "tracking.backend=mlflow",
        f"tracking.uri={(tmp_path / 'mlruns').as_uri()}",
        "tracking.experiment=unit",
    ]
    assert main(args) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert set(_figures((run_dir / "report.html").read_text())) >= set(FIGURE_IDS)
    results = json.loads((run_dir / "results.json").read_text())

    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    (logged,) = mlflow.search_runs(experiment_names=["unit"], output_format="list")
    metrics = logged.data.metrics
    student = results["students"]["logconf"]
    assert metrics["student/logconf/pgr"] == pytest.approx(student["pgr"], nan_ok=True)
    assert metrics["student/logconf/pgr_ci_low"] == pytest.approx(student["pgr_ci"][0])
    assert metrics["student/xent/agreement"] == results["students"]["xent"]["agreement"]
    assert metrics["weak/accuracy"] == results["weak"]["accuracy"]
    assert metrics["ceiling/auroc"] == results["ceiling"]["auroc"]
    # Every finite scalar of results.json is logged, and nothing else outside the curves.
    expected = {
        f"{prefix}/{key}": value
        for prefix, block in [
            ("weak", results["weak"]),
            ("ceiling", results["ceiling"]),
            *[(f"student/{m}", b) for m, b in results["students"].items()],
            *[(f"control/{m}", b) for m, b in results["controls"].items()],
        ]
        for key, value in block.items()
        if isinstance(value, int | float) and math.isfinite(value) and "_ci_" not in key
    }
    scalars = {k: v for k, v in metrics.items() if not k.startswith("curve/") and "_ci_" not in k}
    assert scalars.keys() == expected.keys()
    for key, value in expected.items():
        assert scalars[key] == pytest.approx(value, nan_ok=True), key
    client = mlflow.MlflowClient()
    curve_keys = [k for k in metrics if k.startswith("curve/student/") and k.endswith("step_loss")]
    assert len(curve_keys) == 2 * len(results["seeds"])  # one per student and seed
    assert len(client.get_metric_history(logged.info.run_id, curve_keys[0])) == 3
    assert logged.data.params["strong.model"] == tiny["large"]
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"report.html", "results.json"} <= artifacts


def test_training_history_logs_loss_target_accuracy_and_confidence_weight_per_step():
    torch.manual_seed(0)
    features = torch.randn(16, 4).numpy()
    targets = torch.softmax(torch.randn(16, 2) * 3, -1).numpy()  # (N, K) weak soft labels
    head = LinearHead(4, 2)
    with torch.no_grad():  # by hand, before the first update (one batch = all rows)
        logits = head(torch.as_tensor(features))
        first_loss = float(soft_cross_entropy(logits, torch.as_tensor(targets)))
        first_accuracy = float(
            (logits.argmax(1) == torch.as_tensor(targets).argmax(1)).float().mean()
        )
    cfg = LoopConfig(epochs=4, batch_size=16, lr=0.1, select_best=False)
    history = train_classifier(head, FeatureBatcher(features), targets, Logconf(), cfg)
    assert len(history.step_loss) == len(history.step_target_accuracy) == 4
    # Step 0 has c = 0, so logconf's loss is the plain cross-entropy with the weak labels.
    assert history.step_loss[0] == pytest.approx(first_loss, abs=1e-5)
    assert history.step_target_accuracy[0] == pytest.approx(first_accuracy)
    # c(t) = alpha · min(1, (t / T) / warmup) with alpha 0.5, warmup 0.2, T = 4 steps.
    assert history.step_confidence_weight == pytest.approx([0.0, 0.5, 0.5, 0.5])
    plain = train_classifier(LinearHead(4, 2), FeatureBatcher(features), targets, Xent(), cfg)
    assert plain.step_confidence_weight == [None] * 4
    assert np.all(np.diff(plain.step_loss) < 0)  # full-batch steps on a convex loss go down


def test_collect_and_report_commands(swept, tmp_path, capsys):
    assert main(["collect", str(swept), "-o", str(tmp_path)]) == 0
    assert (tmp_path / "results.parquet").is_file() and (tmp_path / "results.csv").is_file()
    assert main(["report", str(swept), "-o", str(tmp_path / "r.html")]) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == tmp_path / "r.html"
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_mlflow_groups_a_sweeps_runs_under_one_parent(swept, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="mlflow not installed (weaklift[mlflow])")
    from weaklift.config import TrackingConfig
    from weaklift.tracking import log_runs, results_metrics

    run_dirs = sorted(p for p in (swept / "runs").iterdir())
    uri = (tmp_path / "mlruns").as_uri()
    tracking = TrackingConfig(backend="mlflow", uri=uri)
    log_runs(
        tracking, [(d, {"seed": i}) for i, d in enumerate(run_dirs)], "sweep-t", sweep_name="t"
    )
    mlflow.set_tracking_uri(uri)
    logged = mlflow.search_runs(experiment_names=["sweep-t"], output_format="list")
    (parent,) = [r for r in logged if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in logged if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(run_dirs) and parent.data.tags["weaklift.sweep"] == "t"
    for child in children:
        results = json.loads(
            (Path(child.data.tags["weaklift.run_dir"]) / "results.json").read_text()
        )
        expected = results_metrics(results)
        logged_metrics = {k: v for k, v in child.data.metrics.items() if not k.startswith("curve/")}
        assert logged_metrics.keys() == expected.keys()
        assert all(logged_metrics[k] == pytest.approx(v, nan_ok=True) for k, v in expected.items())


def test_ensemble_and_ladder_runs_get_their_panel(tiny, tmp_path):  # noqa: F811
    from weaklift.config_files import config_from_mapping
    from weaklift.runner import run_recorded

    base = _base(tiny, tmp_path)
    ensemble = {**base, "weak": ["tfidf", tiny["small"]], "strong": tiny["large"]}
    ladder = {**base, "ladder": [tiny["small"], tiny["large"], tiny["small"]], "methods": ["xent"]}
    run_dirs = [
        str(run_recorded(config_from_mapping(raw))[0].run_dir) for raw in (ensemble, ladder)
    ]
    runs = load_runs(tmp_path, run_dirs=run_dirs)
    rows = results_table(runs)
    assert sorted(rows[rows.role == "weak_member"].method) == sorted(["tfidf", tiny["small"]])
    figures = _figures(write_report(runs, tmp_path / "r.html").read_text())
    assert "ensemble_ladder" in figures
    only_plain = load_runs(tmp_path, run_dirs=run_dirs[:1])
    assert "ensemble_ladder" in _figures(write_report(only_plain, tmp_path / "e.html").read_text())


def test_tick_labels_name_folders_by_their_last_part_and_wrap():
    """Whole paths as tick labels collapsed a heatmap's axes (matplotlib's layout warning)."""
    assert tick("/tmp/runs/gen0/weak + /tmp/runs/gen0/weak seed=1") == "weak + weak seed=1"
    assert tick("minilm-l6") == "minilm-l6"
    assert max(len(line) for line in tick("a" * 70).splitlines()) == 28
