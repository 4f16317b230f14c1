"""`weaklift suite` (issue 17): the suite as one sweep, and its summary across tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.tiny_models import make_tiny_model
from weaklift.cli import main
from weaklift.errors import WeakliftError
from weaklift.report_html import SUITE_FIGURE_IDS
from weaklift.suite import load_suite, sign_test, suite_summary

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "boring", "dull"]
FILLER = ["the", "film", "was", "really", "quite", "a", "story"]


def _suite_file(path, extra: str = "") -> str:
    path.write_text(
        "name: suite\nmethods: [xent, logconf]\nseeds: 1\ncontrols: false\n"
        "sizes:\n  default: {weak_train: 40, transfer: 40, val: 10, test: 40}\n"
        "  cola: {test: 30}\n" + extra
    )
    return str(path)


def _sentences(n: int, seed: int) -> list[tuple[int, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [*rng.choice(FILLER, size=4), rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append((label, " ".join(words)))
    return rows


def _data(root):
    """sst2 (stsa.binary.* lines: label sentence) and cola (cola_public/raw/*.tsv) fixtures."""
    (root / "sst2").mkdir(parents=True)
    lines = [f"{label} {text}" for label, text in _sentences(160, 0)]
    (root / "sst2" / "stsa.binary.train").write_text("\n".join(lines) + "\n")
    raw = root / "cola" / "cola_public" / "raw"
    raw.mkdir(parents=True)
    rows = [f"src\t{label}\t{'' if label else '*'}\t{text}" for label, text in _sentences(160, 1)]
    (raw / "in_domain_train.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_the_suite_is_one_point_per_present_task_with_its_own_sizes(tmp_path):
    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True)
    (data / "cola").mkdir()
    suite_file = _suite_file(tmp_path / "suite.yaml")
    sweep, missing = load_suite(suite_file, data)
    points, _ = sweep.expand()
    assert [p.config.task.name for p in points] == ["sst2", "cola"]
    assert [p.config.split.test for p in points] == [40, 30]  # cola's own size
    assert points[1].config.task.path == str(data / "cola")
    assert "sciq" in missing and "sst2" not in missing
    overridden, _ = load_suite(suite_file, data, ["cola"], ["split.test=20", "seeds=2"])
    (point,) = overridden.expand()[0]
    assert point.config.split.test == 20 and point.config.seeds == 2


@pytest.mark.parametrize(
    ("tasks", "message"),
    [(["sst3"], "sst3 not in the suite"), (["sciq"], "no suite task has its data folder")],
)
def test_unknown_or_absent_tasks_are_clear_errors(tmp_path, tasks, message):
    with pytest.raises(WeakliftError, match=message):
        load_suite(_suite_file(tmp_path / "suite.yaml"), tmp_path, tasks)


def test_a_suite_file_without_sizes_is_refused(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("name: suite\n")
    with pytest.raises(WeakliftError, match="sizes"):
        load_suite(path, tmp_path)


def _table(pgrs: dict[str, dict[str, float]], scores: dict[str, dict[str, float]]):
    rows = []
    for task in pgrs:
        rows.append({"task": task, "role": "weak", "method": "", "score": 0.6, "pgr": np.nan,
                     "num_test": 1000})  # fmt: skip
        ceiling, gap_ci = (0.61, (-0.02, 0.04)) if task == "flat" else (0.8, (0.15, 0.25))
        rows.append({"task": task, "role": "ceiling", "method": "", "score": ceiling,
                     "pgr": np.nan, "num_test": 1000, "minus_weak_ci_low": gap_ci[0],
                     "minus_weak_ci_high": gap_ci[1]})  # fmt: skip
        for method, pgr in pgrs[task].items():
            rows.append({"task": task, "role": "student", "method": method,
                         "score": scores[task][method], "pgr": pgr, "num_test": 1000})  # fmt: skip
    return pd.DataFrame(rows)


def test_summary_medians_gaps_and_the_sign_test_by_hand():
    tasks = ["a", "b", "c", "d", "e", "flat"]
    pgrs = {t: {"xent": 0.1 * i, "logconf": 0.1 * i + 0.2} for i, t in enumerate(tasks)}
    scores = {t: {"xent": 0.65, "logconf": 0.70 if t != "e" else 0.65} for t in tasks}
    per_task, medians, sign = suite_summary(_table(pgrs, scores), samples=2000)
    xent = medians.set_index("method").loc["xent"]
    # "flat" (gap CI spans 0) is left out of the medians, not of the sign test
    assert xent["median_pgr"] == pytest.approx(np.median([0.0, 0.1, 0.2, 0.3, 0.4]))
    assert xent["tasks"] == 5
    assert xent["ci_low"] <= xent["median_pgr"] <= xent["ci_high"]
    assert per_task.loc["a", "gap"] == pytest.approx(0.2) and per_task.loc["a", "gap_ok"]
    assert not per_task.loc["flat", "gap_ok"]  # the run's gap CI spans 0
    assert per_task.loc["c", "pgr_logconf"] == pytest.approx(0.4)
    assert (sign["wins"], sign["losses"], sign["ties"]) == (5, 0, 1)
    assert sign["p_value"] == pytest.approx(2 * 0.5**5)  # two-sided sign test, ties dropped
    assert sign_test(_table(pgrs, scores), "bayes", "xent")["tasks"] == 0


def test_weaklift_suite_runs_every_present_task_then_summarises_and_resumes(tmp_path, capsys):
    data = _data(tmp_path / "data")
    words = [" ".join(POSITIVE + NEGATIVE + FILLER)]
    weak = make_tiny_model(tmp_path / "weak", arch="bert", texts=words)
    strong = make_tiny_model(tmp_path / "strong", arch="llama", texts=words)
    args = [
        "suite", "--suite-file", _suite_file(tmp_path / "suite.yaml"), "--data", str(data),
        f"weak.model={weak}", f"strong.model={strong}", f"output_dir={tmp_path / 'out'}",
        "train.probe.epochs=5", "bootstrap_samples=50",
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "skip  sciq: no folder" in printed
    assert "median PGR xent" in printed and "logconf vs xent" in printed
    table = pd.read_parquet(tmp_path / "out" / "suite.parquet")
    assert sorted(table["task"]) == ["cola", "sst2"]
    assert {"gap", "gap_ci_low", "gap_ok", "pgr_xent", "pgr_logconf"} <= set(table.columns)
    assert (tmp_path / "out" / "results.parquet").exists()
    page = (tmp_path / "out" / "report.html").read_text()
    for figure in SUITE_FIGURE_IDS:  # the per-task figures, with CIs, and the across-task section
        assert f"<figure id='fig-{figure}'>" in page
    assert "95% percentile bootstrap over seeds and test examples" in page
    assert "<h2 id='suite'>Across tasks</h2>" in page and "sign test" in page
    assert "<figure id='fig-pgr'>" not in page  # pools tasks, with and without a gap: left out
    assert main(args) == 0  # resumed: every stage read from the store
    assert "0 stage execution(s)" in capsys.readouterr().out
