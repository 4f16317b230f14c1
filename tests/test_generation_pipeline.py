"""Generation end to end with tiny random causal LMs: every method, caching, results, bad configs."""

from __future__ import annotations

import json
import math

import pytest

from tests.tiny_lms import bpe_tokenizer, make_tiny_lm, metaspace_tokenizer
from tests.tiny_models import make_tiny_model
from weaklift.cli import main
from weaklift.config import load_config
from weaklift.errors import WeakliftError
from weaklift.methods.generation import GEN_METHODS
from weaklift.pipeline import run_experiment
from weaklift.report import results_table
from weaklift.store import ArtifactStore
from weaklift.tasks.generation import slurp_example

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
    # decoding: each member on transfer and test, the ceiling and every student on test
    assert store.executions["generations"] == 2 * 2 + 1 + len(METHODS)
    assert store.executions["rescore"] == 2  # joint: each member rescores the pooled candidates
    saved = json.loads((results.run_dir / "results.json").read_text())
    assert saved["kind"] == "generation" and saved["primary"] == "slu_f1"
    assert set(saved["weak_members"]) == {
        results["models"]["weak"][0],
        results["models"]["weak"][1],
    }
    table = results_table(saved)
    assert "student joint" in table and "slu_f1" in table and "intent_accuracy" in table
    # the defaults ask for 3 seeds and controls, which generation does not run: said, not ignored
    assert saved["notes"] == [
        "a generation run trains one seed (seed=0); seeds=3 applies to classification runs only",
        "the oracle and shuffled controls are not run for generation tasks",
    ]
    assert "note: a generation run trains one seed" in table


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


def test_full_finetuning_mode_runs(workdir, tmp_path):
    overrides = _overrides(workdir, tmp_path, "strong.mode=full", "methods=[sft]")
    overrides[2] = f"weak=[{{model: {workdir['weak']}, mode: full}}]"
    results = run_experiment(load_config(None, overrides), ArtifactStore(tmp_path / "artifacts"))
    assert set(results["students"]) == {"sft"} and 0.0 <= results["ceiling"]["slu_f1"] <= 1.0
