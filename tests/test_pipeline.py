"""End to end with tiny random models: every mode, stage reuse, results shape, CLI errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import make_tiny_model
from weaklift import pipeline
from weaklift.cli import main
from weaklift.config_files import load_config
from weaklift.methods import METHODS
from weaklift.pipeline import run_experiment
from weaklift.store import Artifact, ArtifactStore
from weaklift.tasks import load_task

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "boring", "dull"]
FILLER = ["the", "film", "was", "really", "quite", "plot", "actors", "and", "story", "very"]
SIZES = ["split.weak_train=40", "split.transfer=40", "split.val=20", "split.test=40"]


def _write_task(path, n=160, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(i % 2)
        words = list(rng.choice(FILLER, size=4)) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "sentiment": "pos" if label else "neg"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    texts = [" ".join(POSITIVE + NEGATIVE + FILLER)]
    weak = make_tiny_model(root / "weak", arch="bert", texts=texts)
    strong = make_tiny_model(root / "strong", arch="llama", texts=texts)
    data = _write_task(root / "reviews.jsonl")
    return {"root": root, "weak": str(weak), "strong": str(strong), "data": str(data)}


def _overrides(workdir, out, *extra):
    return [
        "task.name=file",
        f"task.path={workdir['data']}",
        "task.template=Review: {review}",
        "task.label_column=sentiment",
        f"weak.model={workdir['weak']}",
        f"strong.model={workdir['strong']}",
        f"output_dir={out}",
        "train.probe.epochs=5",
        "train.finetune.epochs=1",
        "train.finetune.batch_size=8",
        "train.finetune.micro_batch_size=4",
        "train.finetune.lr=1e-3",
        "bootstrap_samples=50",
        "seeds=1",
        "controls=false",
        *SIZES,
        *extra,
    ]


def _check_results(results, methods):
    for side in ("weak", "ceiling"):
        assert 0 <= results[side]["accuracy"] <= 1 and 0 <= results[side]["auroc"] <= 1
    assert list(results["students"]) == methods
    weak, ceiling = results["weak"]["accuracy"], results["ceiling"]["accuracy"]
    for student in results["students"].values():
        assert set(student) >= {"accuracy", "auroc", "pgr", "pgr_ci", "agreement"}
        if ceiling != weak:  # PGR is computed from the reported accuracies
            assert student["pgr"] == pytest.approx((student["accuracy"] - weak) / (ceiling - weak))
        assert 0 <= student["agreement"] <= 1 and len(student["pgr_ci"]) == 2
        low, high = student["accuracy_ci"]
        assert low <= student["accuracy"] <= high
    gap = results["ceiling"]  # the gap's interval: the same paired resamples, ceiling − weak
    assert gap["minus_weak"] == pytest.approx(ceiling - weak)
    assert gap["minus_weak_ci_low"] <= ceiling - weak <= gap["minus_weak_ci_high"]
    assert gap["minus_weak_ci_high"] - gap["minus_weak_ci_low"] > 0


def test_probe_run_writes_results_and_reuses_every_stage(workdir, tmp_path, monkeypatch):
    cfg = load_config(None, _overrides(workdir, tmp_path, "methods=[xent,logconf]"))
    first_store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(cfg, first_store)
    _check_results(results.data, ["xent", "logconf"])
    assert results.data["task"] == "file" and results.data["label_names"] == ["neg", "pos"]
    on_disk = json.loads((results.run_dir / "results.json").read_text())
    assert on_disk["students"].keys() == results.data["students"].keys()
    assert first_store.executions["student"] == 2
    assert first_store.executions["features"] == 2  # one all-layer pass per model, every split

    second_store = ArtifactStore(tmp_path / "artifacts")
    again = run_experiment(cfg, second_store)
    assert sum(second_store.executions.values()) == 0  # nothing trained, extracted or evaluated
    assert again.data["students"] == results.data["students"]

    # Changing only the method reuses splits, features, weak model, weak labels and ceiling.
    third_store = ArtifactStore(tmp_path / "artifacts")
    run_experiment(
        load_config(None, _overrides(workdir, tmp_path, "methods=[product]")), third_store
    )
    assert dict(third_store.executions) == {"student": 1, "evaluation": 1}

    # Bumping one method's version retrains only that method's student.
    monkeypatch.setattr(METHODS["logconf"], "version", METHODS["logconf"].version + 1)
    fourth_store = ArtifactStore(tmp_path / "artifacts")
    bumped = run_experiment(cfg, fourth_store)
    assert dict(fourth_store.executions) == {"student": 1, "evaluation": 1}
    assert bumped.data["students"]["xent"] == results.data["students"]["xent"]

    # Changing the layer re-trains the probes but never re-runs a forward pass.
    fifth_store = ArtifactStore(tmp_path / "artifacts")
    run_experiment(
        load_config(None, _overrides(workdir, tmp_path, "methods=[xent,logconf]", "weak.layer=-1")),
        fifth_store,
    )
    assert fifth_store.executions["features"] == 0 and fifth_store.executions["weak_model"] == 1
    assert fifth_store.executions["ceiling"] == 0  # the strong side did not change


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_finetune_modes_end_to_end(workdir, tmp_path, mode):
    cfg = load_config(
        None,
        _overrides(
            workdir, tmp_path, f"weak.mode={mode}", f"strong.mode={mode}", "methods=[logconf]"
        ),
    )
    store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(cfg, store)
    _check_results(results.data, ["logconf"])
    assert store.executions["features"] == 0  # finetuning reads tokens, not cached features
    run_experiment(cfg, store2 := ArtifactStore(tmp_path / "artifacts"))
    assert sum(store2.executions.values()) == 0


def test_cli_json_prints_results(workdir, tmp_path, capsys):
    code = main(["run", "--json", *_overrides(workdir, tmp_path, "methods=[xent]")])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) >= {"task", "weak", "ceiling", "students"}
    assert not math.isnan(printed["students"]["xent"]["accuracy"])


def test_cli_log_lines_name_the_library_that_logged_them():
    """Only weaklift's lines say [weaklift] (another library's INFO and its chatter stay out):
    tests and users read the log by that prefix."""
    script = (
        "import logging; from weaklift.cli import _configure_logging; _configure_logging(); "
        "logging.getLogger('weaklift').info('training ceiling'); "
        "logging.getLogger('matplotlib.font_manager').info('generated new fontManager'); "
        "logging.getLogger('torch.distributed').warning('a warning'); "
        "logging.getLogger('transformers.modeling_utils').warning('LOAD REPORT')"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["[weaklift] training ceiling", "[torch] a warning"]


def _bad_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    return str(path)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_task", "unknown task"),
        ("unknown_model", "nosuch-model"),
        ("unknown_method", "unknown method"),
        ("missing_column", "sentiment"),
        ("label_out_of_range", "out of range"),
        ("too_few", "split sizes need"),
        ("unreadable", "garbage.parquet"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_artifact(workdir, tmp_path, capsys, case, expected):
    base = _overrides(workdir, tmp_path)
    extra = {
        "unknown_task": ["task.name=nosuch"],
        "unknown_model": ["strong.model=nosuch-model"],
        "unknown_method": ["methods=[xent,nosuch]"],
        "missing_column": [
            f"task.path={_bad_file(tmp_path, 'a.jsonl', json.dumps({'review': 'x', 'label': 1}))}"
        ],
        "label_out_of_range": [
            "task.label_column=y",
            f"task.path={_bad_file(tmp_path, 'b.jsonl', json.dumps({'review': 'x', 'y': -1}))}",
        ],
        "too_few": ["split.test=100000"],
        "unreadable": [f"task.path={_bad_file(tmp_path, 'garbage.parquet', 'not parquet at all')}"],
    }[case]
    code = main(["run", *base, *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len([line for line in err if line.startswith("weaklift: error:")]) == 1
    assert expected in err[-1]
    artifacts = tmp_path / "artifacts"
    leftovers = [p for p in artifacts.rglob("*") if ".tmp-" in p.name] if artifacts.exists() else []
    assert leftovers == []


class _Loaded(Exception):
    """Stops a run right after the task is loaded."""


def test_run_seed_leaves_the_data_alone_and_task_seed_fixes_it(workdir, tmp_path, monkeypatch):
    """`seed` changes splits and training only; `task.seed` decides the data (here the subset)."""
    fingerprints = []

    def load_and_stop(*args):
        fingerprints.append(load_task(*args).fingerprint())
        raise _Loaded

    monkeypatch.setattr(pipeline, "load_task", load_and_stop)
    for extra in (["seed=0"], ["seed=1"], ["seed=0", "task.seed=1"]):
        cfg = load_config(None, _overrides(workdir, tmp_path, "task.max_examples=120", *extra))
        with pytest.raises(_Loaded):
            run_experiment(cfg)
    assert fingerprints[0] == fingerprints[1]
    assert fingerprints[0] != fingerprints[2]


def test_cli_template_starting_with_a_brace_runs(workdir, tmp_path, capsys):
    """`task.template={review}` is a template, not a YAML mapping."""
    overrides = [o for o in _overrides(workdir, tmp_path, "methods=[xent]") if "template" not in o]
    code = main(["run", "--json", *overrides, "task.template={review}"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["config"]["task"]["template"] == "{review}"
    assert 0 <= printed["students"]["xent"]["accuracy"] <= 1


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("weaklift: error:"), err
    return err[0]


@pytest.mark.parametrize("where", ["is_a_file", "under_a_file"])
def test_cli_unusable_output_dir_exits_2_and_writes_nothing(workdir, tmp_path, capsys, where):
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    out = blocker if where == "is_a_file" else blocker / "runs"
    code = main(["run", *_overrides(workdir, out)])
    assert code == 2
    line = _one_error_line(capsys)
    assert "output_dir" in line and str(blocker) in line
    assert blocker.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [blocker]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["weak.model=tfidf"], "weak.model: tfidf"),
        (["weak=[smollm2-135m,tfidf]"], "weak.1.model: tfidf"),
        (["weak=[smollm2-135m,minilm-l6]", "methods=[joint,bayes]"], "methods.1: bayes"),
    ],
)
def test_cli_preference_task_rejects_non_pairwise_parts(tmp_path, capsys, extra, expected):
    """A preference task with a tfidf weak member or `bayes` fails validate, not the run."""
    args = ["task.name=anthropic_hh_pairs", f"task.path={tmp_path}", f"output_dir={tmp_path}/o"]
    for command in ("validate", "run"):
        assert main([command, *args, *extra]) == 2
        assert expected in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()
    ensemble = ["weak=[smollm2-135m,minilm-l6]", "methods=[joint,multi_naive,xent]"]
    assert main(["validate", *args, *ensemble]) == 0  # pairwise methods pass


def test_pipeline_splits_keep_file_groups_whole(workdir, tmp_path):
    rows = [json.loads(line) for line in Path(workdir["data"]).read_text().splitlines()]
    path = tmp_path / "grouped.jsonl"
    path.write_text(
        "".join(json.dumps({**r, "who": f"w{i // 3}"}) + "\n" for i, r in enumerate(rows))
    )
    overrides = [o for o in _overrides(workdir, tmp_path, "methods=[xent]") if "task.path" not in o]
    cfg = load_config(None, [*overrides, f"task.path={path}", "task.group_column=who"])
    store = ArtifactStore(tmp_path / "artifacts")
    run_experiment(cfg, store)
    (splits_dir,) = (tmp_path / "artifacts" / "splits").iterdir()
    arrays = Artifact("splits", "", splits_dir, {}).arrays()
    owner = {}
    for name, rows_of_split in arrays.items():
        for row in rows_of_split:
            assert owner.setdefault(int(row) // 3, name) == name  # a group in one split only
