"""Preference optimisation of a generation student, end to end with tiny random causal LMs:
the soft student writes candidates, the weak generators judge them, DPO and cDPO continue it, and
its test outputs are scored with a gain over the student; caching, the reference, bad configs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.test_generation_pipeline import ROWS
from tests.tiny_lms import bpe_tokenizer, make_tiny_lm, metaspace_tokenizer
from weaklift.cli import main
from weaklift.config_files import load_config
from weaklift.generation_metrics import METRICS
from weaklift.models.lm import PromptRule, encode_responses, response_logprobs
from weaklift.pipeline import run_experiment
from weaklift.report import results_table
from weaklift.stages.context import StageContext
from weaklift.stages.data import splits_stage
from weaklift.stages.gen_preference import transfer_agreement
from weaklift.stages.generation import GEN_TRAIN_VERSION, trained_source
from weaklift.stages.judges import CANDIDATES_VERSION
from weaklift.stages.preference_opt import PREFERENCE_TRAIN_VERSION, load_policy
from weaklift.store import ArtifactStore
from weaklift.tasks import load_task
from weaklift.tasks.generation import slurp_example

LOSSES = ["dpo", "cdpo(epsilon=0.1)"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("genpref")
    (root / "slurp").mkdir()
    (root / "slurp" / "devel.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    texts = [t for r in ROWS for t in slurp_example(r)]
    weak = make_tiny_lm(root / "weak", bpe_tokenizer(texts, 300))
    strong = make_tiny_lm(root / "strong", metaspace_tokenizer(texts, 150))
    return {"root": root, "weak": str(weak), "strong": str(strong)}


def _overrides(w, out, *extra):
    return [
        "task.name=slurp",
        f"task.path={w['root'] / 'slurp'}",
        f"weak=[{{model: {w['weak']}, mode: lora}}, {{model: {w['weak']}, mode: lora, seed: 1}}]",
        f"strong.model={w['strong']}",
        "strong.mode=lora",
        "methods=[sft, soft]",
        f"output_dir={out}",
        "train.finetune.batch_size=4",
        "train.finetune.lr=1e-3",
        "generation.max_new_tokens=6",
        "generation.beams=2",
        "generation.n_best=2",
        "bootstrap_samples=20",
        "split.weak_train=8",
        "split.transfer=8",
        "split.val=2",
        "split.test=6",
        "preference.students=[soft]",
        "preference.losses=[dpo, {name: cdpo, epsilon: 0.1}]",
        "preference.candidates={num: 3, max_new_tokens: 6, batch_size: 4}",
        "preference.train={batch_size: 4, micro_batch_size: 2, lr: 0.05, max_response_length: 16}",
        *extra,
    ]


@pytest.fixture(scope="module")
def first_run(workdir):
    out = workdir["root"] / "runs"
    store = ArtifactStore(out / "artifacts")
    cfg = load_config(None, _overrides(workdir, out))
    return cfg, store, run_experiment(cfg, store)


def _only(store, stage, version=1, **wanted):
    """The one artifact of ``stage`` (at ``version``) whose manifest params hold ``wanted`` (a
    value, or a predicate on the param)."""

    def matches(artifact) -> bool:
        params = json.loads((artifact.path / "manifest.json").read_text())["params"]
        return all(
            v(params.get(k)) if callable(v) else params.get(k) == v for k, v in wanted.items()
        )

    found = [a for a in store.artifacts(stage, version, {}) if matches(a)]
    assert len(found) == 1, (stage, wanted, len(found))
    return found[0]


def _soft_student(store):
    return _only(store, "gen_student", GEN_TRAIN_VERSION, method=lambda m: m["name"] == "soft")


def test_each_loss_continues_the_student_and_is_scored_with_its_gain(first_run):
    _, _, results = first_run
    primary = results["primary"]
    soft = results["students"]["soft"]
    for loss in LOSSES:
        policy = results["students"][f"soft → {loss}"]
        assert policy["started_from"] == "soft"
        assert policy["gain"] == pytest.approx(policy[primary] - soft[primary])
        lo, hi = policy["gain_ci"]
        assert lo <= policy["gain"] <= hi
        assert "pgr" in policy and "pgr_ci" in policy
    assert "gain" not in soft and "gain" not in results["students"]["sft"]


def test_stages_ran_once_each_and_a_rerun_does_nothing(workdir, first_run):
    cfg, store, results = first_run
    assert store.executions["candidates"] == 1  # only the soft student writes candidates
    assert store.executions["judge_scores"] == 2  # each weak generator judges them
    assert store.executions["judged_pairs"] == 1
    assert store.executions["preference_policy"] == len(LOSSES)
    # members on transfer, test and weak_holdout (the best member's choice), ceiling, two
    # students, two policies on test
    assert store.executions["generations"] == 2 * 3 + 1 + 2 + len(LOSSES)
    again_store = ArtifactStore(store.root)
    again = run_experiment(cfg, again_store)
    assert sum(again_store.executions.values()) == 0
    same = json.dumps(again.data["preference"]) == json.dumps(results.data["preference"])
    assert same  # compared as JSON: an all-tied agreement is NaN, which never equals itself


def test_candidates_come_from_the_student_in_target_form(first_run):
    _, store, results = first_run
    candidates = _only(store, "candidates", CANDIDATES_VERSION, model=_soft_student(store).key)
    rows = [json.loads(line) for line in (candidates.path / "candidates.jsonl").open()]
    assert len(rows) == 8 and all(len(r["candidates"]) == len(r["ended"]) == 3 for r in rows)
    for text in (c for r in rows for c in r["candidates"]):
        assert text == "" or (text.startswith(" ") and text == " " + " ".join(text.split()))
    report = results["preference"]["soft"]
    assert report["prompts"] == 8 and report["pairs"] + sum(report["dropped"].values()) == 8


def test_judge_agreement_by_hand(first_run):
    cfg, store, results = first_run
    report = results["preference"]["soft"]
    pairs = [json.loads(line) for line in Path(report["pairs_file"]).read_text().splitlines()]
    ctx = StageContext(store=store, data=load_task(cfg.task), cfg=cfg)
    splits_stage(ctx)  # cached: the run's own splits
    references = [ctx.data.targets[i] for i in ctx.splits["transfer"]]
    metric = METRICS["slurp"]

    def f1(index, text):
        return metric.summarize(metric.stats([text], [references[index]]))["slu_f1"]

    diffs = [f1(p["index"], p["chosen"]) - f1(p["index"], p["rejected"]) for p in pairs]
    agreement = report["judge_agreement"]["slu_f1"]
    assert pairs and agreement["agree"] == pytest.approx(sum(d > 0 for d in diffs) / len(diffs))
    assert agreement["disagree"] == pytest.approx(sum(d < 0 for d in diffs) / len(diffs))
    assert agreement["chosen_mean"] == pytest.approx(
        sum(f1(p["index"], p["chosen"]) for p in pairs) / len(pairs)
    )
    assert "intent_accuracy" in report["judge_agreement"]


def test_transfer_agreement_on_hand_made_pairs():
    references = ["alarm_set | time=seven", "play_music | music_genre=jazz", "alarm_set"]
    ctx = SimpleNamespace(
        data=SimpleNamespace(task_metric=METRICS["slurp"], targets=references, contexts=None),
        splits={"transfer": [2, 0, 1]},  # pair indices count transfer prompts, not task rows
    )
    pairs = [
        {"index": 1, "chosen": " alarm_set | time=seven", "rejected": " alarm_set | time=eight"},
        {"index": 2, "chosen": " play_music", "rejected": " play_music | music_genre=jazz"},
        {"index": 0, "chosen": " alarm_set", "rejected": " alarm_query"},  # no slots: F1 ties
    ]
    agreement = transfer_agreement(ctx, pairs)
    f1 = agreement["slu_f1"]
    assert (f1["agree"], f1["tie"], f1["disagree"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert f1["agree_untied"] == pytest.approx(0.5)
    # SLU-F1 is distance-smoothed: the wrong filler of the right slot earns 0.5 (tp 1, fp/fn
    # 1 each at word and char level), so rejected means (0.5 + 1 + 0) / 3, chosen (1 + 0 + 0) / 3
    assert (f1["chosen_mean"], f1["rejected_mean"]) == pytest.approx((1 / 3, 0.5))
    intent = agreement["intent_accuracy"]  # only the third pair differs in intent
    assert (intent["agree"], intent["tie"], intent["agree_untied"]) == pytest.approx(
        (1 / 3, 2 / 3, 1)
    )


def test_the_reference_is_the_frozen_starting_student(first_run):
    cfg, store, _ = first_run
    soft = _soft_student(store)
    base = trained_source(cfg.strong, soft).load()
    policy = _only(
        store,
        "preference_policy",
        PREFERENCE_TRAIN_VERSION,
        model=soft.key,
        loss=lambda spec: spec["name"] == "dpo",
    )
    prompts, responses = encode_responses(
        base.tokenizer,
        ["Utterance: play some jazz music\nSemantics:"],
        [" play_music"],
        PromptRule(64),
        16,
    )
    pad = base.tokenizer.pad_token_id
    with torch.no_grad():
        student, _ = response_logprobs(base.model, prompts, responses, pad)
        model = load_policy(base, policy)  # the adapter on the one base: no copy
        after, _ = response_logprobs(model, prompts, responses, pad)
        with model.disable_adapter():
            reference, _ = response_logprobs(model, prompts, responses, pad)
        other = trained_source(cfg.strong, _only(store, "gen_ceiling", GEN_TRAIN_VERSION)).load()
        ceiling, _ = response_logprobs(other.model, prompts, responses, pad)
    assert torch.allclose(reference, student, atol=1e-5)  # the reference is the soft student
    assert not torch.allclose(after, student, atol=1e-4)  # and the policy moved away from it
    assert not torch.allclose(reference, ceiling, atol=1e-4)  # another model gives other numbers


def test_the_table_reports_gains_pairs_and_agreement(first_run):
    _, _, results = first_run
    table = results_table(json.loads(json.dumps(results.data)))
    assert "student soft → cdpo(epsilon=0.1)" in table
    assert "after − before" in table and "judged pairs from student soft" in table
    assert "are the judges right?" in table and "    slu_f1 " in table


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["preference.students=[joint]"], "preference.students.0: 'joint' is not one of"),
        (["preference.weak_judges=true"], "preference.weak_judges: a generation task always"),
        (["strong.mode=probe"], "strong.mode"),
    ],
)
def test_bad_preference_configs_fail_with_one_line(workdir, tmp_path, capsys, extra, message):
    code = main(["validate", *_overrides(workdir, tmp_path, *extra)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err


def test_students_is_refused_outside_generation_tasks(capsys):
    code = main(["validate", "strong.mode=lora", "preference.students=[xent]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "preference.students: only generation tasks" in err
