"""Generation end to end with tiny random causal LMs: every method, caching, results, bad configs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tests.tiny_lms import bpe_tokenizer, make_tiny_lm, metaspace_tokenizer
from tests.tiny_models import make_tiny_model
from weaklift.cli import main
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.methods.generation import GEN_METHODS
from weaklift.pipeline import run_experiment
from weaklift.report import results_table
from weaklift.splits import Splits
from weaklift.stages import StageContext
from weaklift.stages.generation import GEN_TRAIN_VERSION, gen_evaluation_stage
from weaklift.store import ArtifactStore, save_json
from weaklift.tasks.generation import GenerationData, slurp_example
from weaklift.tracking import results_metrics

ROWS = [
    {"sentence": f"wake me up at {t} {d}", "scenario": "alarm", "action": "set",
     "tokens": [{"surface": w} for w in f"wake me up at {t} {d}".split()],
     "entities": [{"type": "time", "span": [4]}, {"type": "date", "span": [5]}]}
    for t in ("seven", "eight", "nine", "ten", "noon") for d in ("today", "tomorrow", "monday")
] + [
    {"sentence": f"play some {g} music", "scenario": "play", "action": "music",
     "tokens": [{"surface": w} for w in f"play some {g} music".split()],
     "entities": [{"type": "music_genre", "span": [2]}]}
    for g in ("jazz", "rock", "pop", "folk", "blues", "soul", "metal", "disco", "house")
]  # fmt: skip
SIZES = ["split.weak_train=8", "split.transfer=8", "split.val=2", "split.test=6"]
METHODS = sorted(GEN_METHODS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    (root / "slurp").mkdir()
    (root / "slurp" / "devel.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    texts = [t for r in ROWS for t in slurp_example(r)]
    weak = make_tiny_lm(root / "weak", bpe_tokenizer(texts, 300))
    strong = make_tiny_lm(root / "strong", metaspace_tokenizer(texts, 150))
    encoder = make_tiny_model(root / "encoder", arch="bert", texts=texts)
    return {"root": root, "weak": str(weak), "strong": str(strong), "encoder": str(encoder)}


def _overrides(w, out, *extra):
    return [
        "task.name=slurp",
        f"task.path={w['root'] / 'slurp'}",
        f"weak=[{{model: {w['weak']}, mode: lora}}, {{model: {w['weak']}, mode: lora, seed: 1}}]",
        f"strong.model={w['strong']}",
        "strong.mode=lora",
        f"methods={METHODS}".replace("'", ""),
        f"output_dir={out}",
        "train.finetune.epochs=1",
        "train.finetune.batch_size=4",
        "train.finetune.micro_batch_size=2",
        "train.finetune.lr=1e-3",
        "generation.max_new_tokens=6",
        "generation.beams=2",
        "generation.n_best=2",
        "bootstrap_samples=20",
        *SIZES,
        *extra,
    ]


@pytest.fixture(scope="module")
def first_run(workdir):
    out = workdir["root"] / "runs"
    store = ArtifactStore(out / "artifacts")
    results = run_experiment(load_config(None, _overrides(workdir, out)), store)
    return out, store, results


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_a_student_and_is_scored(first_run, method):
    _, _, results = first_run
    student = results["students"][method]
    assert 0.0 <= student["slu_f1"] <= 1.0 and 0.0 <= student["intent_accuracy"] <= 1.0
    lo, hi = student["slu_f1_ci"]
    assert lo <= student["slu_f1"] <= hi
    assert "pgr" in student and "pgr_ci" in student and "pgr_best_member" in student


def test_stages_ran_once_each_and_results_are_written(first_run):
    out, store, results = first_run
    assert store.executions["weak_generator"] == 2
    assert store.executions["gen_ceiling"] == 1
    assert store.executions["gen_student"] == len(METHODS)
    # decoding: each member on transfer, test and weak_holdout (which picks the best member),
    # the ceiling and every student on test
    assert store.executions["generations"] == 2 * 3 + 1 + len(METHODS)
    assert store.executions["rescore"] == 2  # joint: each member rescores the pooled candidates
    saved = json.loads((results.run_dir / "results.json").read_text())
    assert saved["kind"] == "generation" and saved["primary"] == "slu_f1"
    assert set(saved["weak_members"]) == {
        results["models"]["weak"][0],
        results["models"]["weak"][1],
    }
    table = results_table(saved)
    assert "student joint" in table and "slu_f1" in table and "intent_accuracy" in table
    # a generation run's own defaults: one seed, no controls (asking for more is an error)
    assert saved["config"]["seeds"] == 1 and saved["config"]["controls"] is False
    # the best member is the one that scored highest on weak_holdout, never on test
    assert set(saved["best_member_holdout"]) == set(saved["weak_members"])
    holdout = saved["best_member_holdout"]
    assert saved["best_member"] == max(holdout, key=holdout.get)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("seeds=3", "seeds: a generation run trains one seed"),
        ("controls=true", "controls: generation runs have no oracle or shuffled students"),
        ("train.select=weak_agreement", "train.select: generation runs train for the fixed"),
    ],
)
def test_what_generation_does_not_run_is_refused_not_ignored(
    workdir, tmp_path, capsys, extra, message
):
    assert main(["validate", *_overrides(workdir, tmp_path, extra)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def _generations(store: ArtifactStore, name: str, outputs: list[str]):
    rows = [[{"words": text.split(), "logprobs": [-1.0] * len(text.split())}] for text in outputs]
    return store.get_or_compute(
        "generations", 1, {"name": name}, {}, lambda out: save_json(out, "generations", rows)
    )


def test_the_best_member_is_chosen_on_weak_holdout_and_test_labels_cannot_move_it(tmp_path):
    right, wrong = "alarm_set | time=seven", "play_music | music_genre=jazz"
    store = ArtifactStore(tmp_path / "artifacts")
    holdout_rows, test_rows = np.arange(0, 4), np.arange(4, 8)
    # member a is right on weak_holdout and wrong on test; member b the other way round
    holdout = {
        "a": _generations(store, "a-h", [right] * 4),
        "b": _generations(store, "b-h", [wrong] * 4),
    }
    test = {
        "a": _generations(store, "a-t", [wrong] * 4),
        "b": _generations(store, "b-t", [right] * 4),
    }
    ceiling = _generations(store, "c-t", [right] * 4)
    cfg = load_config(
        None,
        [
            "task.name=slurp",
            "methods=[sft]",
            "weak.mode=lora",
            "strong.mode=lora",
            "bootstrap_samples=10",
        ],
    )
    chosen = []
    for test_target in (right, wrong):  # flipping the test references changes who wins on test
        data = GenerationData(
            "slurp", [f"utterance {i}" for i in range(8)], [right] * 4 + [test_target] * 4, "slurp"
        )
        empty = np.array([], dtype=np.int64)
        ctx = StageContext(store=store, data=data, cfg=cfg)
        ctx.splits = Splits(empty, holdout_rows, empty, empty, test_rows)
        ctx.splits_key = f"splits-{test_target}"
        metrics = gen_evaluation_stage(ctx, test, ceiling, {}, None, holdout).json("metrics")
        chosen.append(metrics["best_member"])
        assert metrics["best_member_holdout"]["a"] > metrics["best_member_holdout"]["b"]
    assert chosen == ["a", "a"]


def test_rerun_trains_and_generates_nothing(workdir, first_run):
    out, _, results = first_run
    store = ArtifactStore(out / "artifacts")
    again = run_experiment(load_config(None, _overrides(workdir, out)), store)
    assert sum(store.executions.values()) == 0  # a rerun generates nothing
    assert again.data["students"] == json.loads(json.dumps(results.data["students"]))


def test_a_new_method_reuses_weak_generators_and_ceiling(workdir, first_run):
    out, _, _ = first_run
    store = ArtifactStore(out / "artifacts")
    cfg = load_config(None, _overrides(workdir, out, "methods=[{name: logconf, alpha: 0.25}]"))
    run_experiment(cfg, store)
    assert store.executions["gen_student"] == 1
    assert store.executions["weak_generator"] == 0 and store.executions["gen_ceiling"] == 0
    assert store.executions["generations"] == 1  # only the new student decodes test


def test_a_method_version_bump_retrains_exactly_its_student(workdir, first_run, monkeypatch):
    """Defect 3: generation methods had no version in their key (bayes's loss changed, its old
    students were reused); a bump now reruns that one student and its test decoding only."""
    out, _, _ = first_run
    monkeypatch.setattr(GEN_METHODS["bayes"], "version", GEN_METHODS["bayes"].version + 1)
    store = ArtifactStore(out / "artifacts")
    run_experiment(load_config(None, _overrides(workdir, out)), store)
    assert store.executions["gen_student"] == 1
    assert store.executions["generations"] == 1  # the new student on test
    assert store.executions["weak_generator"] == 0 and store.executions["gen_ceiling"] == 0
    assert store.executions["rescore"] == 0


def test_pgr_is_computed_from_the_first_member(first_run):
    _, _, results = first_run
    primary = results["primary"]
    weak = results["weak"][primary]
    ceiling = results["ceiling"][primary]
    for student in results["students"].values():
        if ceiling != weak:
            assert student["pgr"] == pytest.approx((student[primary] - weak) / (ceiling - weak))
        else:
            assert math.isnan(student["pgr"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["methods=[xent]"], "methods.0: 'xent' is not a generation method"),
        (["weak=[{model: tfidf, mode: lora}]"], "weak.0.model: tfidf cannot generate"),
        (["strong.mode=probe"], "strong.mode: a probe cannot generate"),
        (["split.balance=true"], "split.balance"),
        (["train.probe.epochs=3"], "train.probe: generation tasks train no probes"),
        (["task.kind=classification"], "task.kind: task 'slurp' is a generation task"),
        (["methods=[{name: multi_naive, weighting: fixed, weights: [1]}]"], "methods.0.weights"),
        (["generation.n_best=3"], "generation.n_best"),
    ],
)
def test_bad_configs_fail_with_one_line(workdir, tmp_path, capsys, extra, message):
    code = main(["validate", *_overrides(workdir, tmp_path, *extra)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err


def test_encoder_member_cannot_generate(workdir, tmp_path, capsys):
    weak = f"weak=[{{model: {workdir['encoder']}, mode: lora}}]"
    code = main(["validate", *_overrides(workdir, tmp_path), weak])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is an encoder" in err and "cannot generate" in err


def test_slow_tokenizer_is_refused_before_any_work(workdir, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    tokenizer_class = type(AutoTokenizer.from_pretrained(workdir["strong"]))
    monkeypatch.setattr(tokenizer_class, "is_fast", property(lambda self: False))
    cfg = load_config(None, _overrides(workdir, tmp_path))
    with pytest.raises(WeakliftError, match="no offset mappings"):
        run_experiment(cfg, ArtifactStore(tmp_path / "artifacts"))
    assert not list((tmp_path / "artifacts").glob("*/*"))  # nothing written


def test_full_finetuning_mode_runs_on_float32_master_weights(workdir, tmp_path):
    extra = ("strong.mode=full", "strong.dtype=bfloat16", "methods=[sft]")
    overrides = _overrides(workdir, tmp_path, *extra)
    overrides[2] = f"weak=[{{model: {workdir['weak']}, mode: full}}]"
    store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(load_config(None, overrides), store)
    assert set(results["students"]) == {"sft"} and 0.0 <= results["ceiling"]["slu_f1"] <= 1.0
    assert results["dtypes"]["strong"] == "bfloat16"
    for stage in ("gen_ceiling", "gen_student"):  # trained in bf16 autocast, saved as float32
        [trained] = store.artifacts(stage, GEN_TRAIN_VERSION, {})
        weights = load_file(trained.path / "weights" / "model.safetensors")
        assert {t.dtype for t in weights.values()} == {torch.float32}


def test_a_sweep_over_a_generation_config_ends_with_a_report_and_collects_each_model(
    workdir, tmp_path
):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: gen\ngrid:\n  generation.share: [even, entropy]\n")
    overrides = [o for o in _overrides(workdir, tmp_path) if not o.startswith("methods=")]
    assert main(["sweep", str(sweep), *overrides, "methods=[soft]"]) == 0
    assert "weaklift sweep gen" in (tmp_path / "report.html").read_text()
    assert main(["collect", str(tmp_path)]) == 0
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert table.groupby("run").role.apply(sorted).map(tuple).unique().tolist() == [
        ("ceiling", "student", "weak", "weak_member", "weak_member")
    ]
    for run_dir in (tmp_path / "runs").iterdir():
        results = json.loads((run_dir / "results.json").read_text())
        mine = table[table.run == run_dir.name]
        student = mine[mine.role == "student"].iloc[0]
        assert student.metric == "slu_f1" and student.method == "soft"
        assert student.score == pytest.approx(results["students"]["soft"]["slu_f1"])
        assert student.intent_accuracy == pytest.approx(
            results["students"]["soft"]["intent_accuracy"]
        )
        assert math.isnan(student.pgr) == math.isnan(results["students"]["soft"]["pgr"])
        metrics = results_metrics(results)
        assert metrics["ceiling/slu_f1"] == pytest.approx(results["ceiling"]["slu_f1"])
