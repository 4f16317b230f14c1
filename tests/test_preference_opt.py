"""Preference optimisation from pair files: HH-RLHF prompt splitting, file checks, config checks,
and a tiny end-to-end DPO/cDPO run that learns the preference and is cached."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.tiny_lms import make_tiny_lm, word_tokenizer
from weaklift.cli import main
from weaklift.config import MethodSpec, PreferenceConfig, TaskConfig
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.judging import score_candidates
from weaklift.models.causal_lm import load_causal_lm
from weaklift.models.lm import PromptRule, encode_responses, response_logprobs
from weaklift.pipeline import run_experiment
from weaklift.report import pairs_table
from weaklift.stages import splits_stage
from weaklift.stages.context import StageContext
from weaklift.stages.preference_opt import (
    PREFERENCE_TRAIN_VERSION,
    LMSource,
    Pairs,
    file_pairs,
    load_policy,
    policy_source,
    preference_train_stage,
    tokenize_pairs,
)
from weaklift.store import ArtifactStore
from weaklift.tasks import load_task
from weaklift.tasks.pairs import split_dialogues
from weaklift.tracking import metric_name, results_metrics

DATA = Path(
    os.environ.get("WEAKLIFT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SUBJECTS = ["the cat", "the dog", "paris", "london", "the sky", "the water", "berlin", "a city"]
GOOD = ["good", "true", "yes"]
BAD = ["bad", "false", "no"]


def test_hh_dialogues_split_at_the_last_shared_assistant_turn():
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: Sure, here is how."
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: No."
    prompt, a, b = split_dialogues(chosen, rejected)
    assert prompt == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant:"
    assert (a, b) == (" Sure, here is how.", " No.")
    assert split_dialogues(chosen, chosen) is None  # identical replies carry no preference
    assert split_dialogues("Human: a", "Human: b") is None  # no assistant turn shared


def test_hh_dpo_from_the_real_files():
    folder = DATA / "hh_rlhf"
    if not folder.exists():
        pytest.skip("HH-RLHF data not present (set WEAKLIFT_DATA)")
    data = load_task(TaskConfig(name="anthropic_hh_dpo", path=str(folder), max_examples=500))
    assert len(data.prompts) == 500 and data.extra["subsampled_from"] > 8000
    assert all(p.endswith("\n\nAssistant:") for p in data.prompts)
    assert all(c != r for c, r in zip(data.chosen, data.rejected, strict=True))


def _write_pairs(path: Path, n: int = 48, seed: int = 0) -> Path:
    """Chosen replies praise, rejected ones disparage: a preference a tiny LM can learn."""
    rng = np.random.default_rng(seed)
    with path.open("w") as handle:
        for i in range(n):
            subject = rng.choice(SUBJECTS)
            row = {
                "prompt": f"question {i} : is {subject} big ?",  # distinct prompts: one group each
                "chosen": f" {rng.choice(GOOD)} , {subject} is {rng.choice(GOOD)}",
                "rejected": f" {rng.choice(BAD)} , {subject} is {rng.choice(BAD)}",
            }
            handle.write(json.dumps(row) + "\n")
    return path


def test_pairs_file_reads_jsonl_and_csv_alike(tmp_path):
    jsonl = _write_pairs(tmp_path / "pairs.jsonl", n=10)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    csv = tmp_path / "pairs.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    a = load_task(TaskConfig(name="pairs_file", path=str(jsonl)))
    b = load_task(TaskConfig(name="pairs_file", path=str(csv)))
    assert (a.prompts, a.chosen, a.rejected) == (b.prompts, b.chosen, b.rejected)
    assert a.chosen[0] == rows[0]["chosen"] and a.fingerprint() == b.fingerprint()


def test_pairs_file_rejects_missing_columns_and_empty_replies(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "chosen": "b"}) + "\n")
    with pytest.raises(WeakliftError, match="'rejected'"):
        load_task(TaskConfig(name="pairs_file", path=str(bad)))
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"prompt": "a", "chosen": " ", "rejected": "c"}) + "\n")
    with pytest.raises(WeakliftError, match="row 0 has no text in column 'chosen'"):
        load_task(TaskConfig(name="pairs_file", path=str(empty)))


def test_bad_preference_configs_fail_with_the_field_named(capsys):
    assert main(["validate", "task.name=pairs_file", "strong.mode=probe"]) == 2
    assert "strong.mode: preference optimisation" in capsys.readouterr().err
    assert main(["validate", "strong.mode=lora", "preference.losses=[kto]"]) == 2
    assert "preference.losses.0: unknown loss 'kto'" in capsys.readouterr().err
    assert main(["validate", "strong.mode=lora", "preference.losses=[{name: dpo, beta: 0}]"]) == 2
    assert "preference.losses.0.beta" in capsys.readouterr().err
    assert main(["validate", "strong.mode=lora", "preference.judges.weights=[1, 2]"]) == 2
    assert "2 weights for 1 weak judges" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["strong.mode=lora", "methods=[cdpo]"], "methods: pair runs train one policy per"),
        (["strong.mode=lora", "train.finetune.lr=1e-5"], "train.finetune: pair runs train with"),
        (["strong.mode=lora", "strong.genft.enabled=true"], "strong.genft: not used by pairs"),
        (
            ["strong.mode=lora", "preference.weak_judges=true", "weak.mode=full", "weak.fsdp=true"],
            "weak.fsdp: weak judges only score replies",
        ),
        (["strong.mode=lora", "split.balance=true"], "split.balance: pairs tasks have no classes"),
        (
            ["strong.mode=lora", "preference.weak_judges=true", "weak.model=tfidf"],
            "weak.model: tfidf cannot judge",
        ),
        (
            ["ladder=[{model: tfidf}, {model: smollm2-135m}, {model: gemma3-270m, mode: lora}]"],
            "ladder: bootstrapping ladders are for classification tasks only",
        ),
    ],
)
def test_classifier_options_are_refused_not_ignored_by_pair_runs(capsys, extra, message):
    """The pairs recipe used to accept these and train as if they were not there."""
    assert main(["validate", "task.name=pairs_file", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory) -> Path:
    texts = [f"is {s} big ?" for s in SUBJECTS] + GOOD + BAD
    return make_tiny_lm(tmp_path_factory.mktemp("policy"), word_tokenizer(texts))


def _overrides(lm_folder: Path, tmp_path: Path, mode: str, losses: str) -> list[str]:
    return [
        "task.name=pairs_file",
        f"task.path={_write_pairs(tmp_path / 'pairs.jsonl', n=49)}",
        f"strong.model={lm_folder}",
        f"strong.mode={mode}",
        "strong.lora.r=4",
        f"output_dir={tmp_path}",
        "split.weak_train=2",  # the least main allows (one for weak_holdout); unused by pairs
        "split.transfer=32",
        "split.val=1",
        "split.test=14",
        f"preference.losses={losses}",
        f"preference.train.epochs={6 if mode == 'lora' else 4}",
        "preference.train.batch_size=8",
        "preference.train.micro_batch_size=4",
        f"preference.train.lr={3e-2 if mode == 'lora' else 1e-2}",
        "bootstrap_samples=50",
    ]


@pytest.mark.parametrize(
    ("mode", "losses", "labels"),
    [
        ("lora", "[{name: dpo, beta: 0.5}, cdpo]", {"dpo(beta=0.5)", "cdpo"}),
        ("full", "[ipo]", {"ipo"}),
    ],
)
def test_preference_optimisation_from_a_pairs_file_end_to_end_and_cached(
    lm_folder, tmp_path, mode, losses, labels
):
    cfg = load_config(None, _overrides(lm_folder, tmp_path, mode, losses))
    store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(cfg, store).data
    assert results["kind"] == "pairs" and results["num_pairs"] == 14
    assert set(results["policies"]) == labels
    assert store.executions["preference_policy"] == len(labels)
    reference = results["reference"]["accuracy"]
    assert reference < 0.5  # the random LM prefers the disparaging reply as often as not
    for metrics in results["policies"].values():
        # held-out pairs: the policy now ranks the praising reply above the disparaging one, by
        # its own likelihood and (mostly) by implicit reward against the reference
        assert metrics["accuracy"] == 1.0
        assert metrics["reward_accuracy"] >= 0.8 and metrics["reward_margin"] > 0
        assert metrics["train_loss_first_last"][1] < metrics["train_loss_first_last"][0]
    table = pairs_table(results)
    assert "reference (before)" in table and all(f"after {label}" in table for label in labels)
    again = ArtifactStore(tmp_path / "artifacts")
    assert run_experiment(cfg, again).data["policies"] == results["policies"]
    assert sum(again.executions.values()) == 0  # nothing retrained, nothing rescored


def test_the_policy_loads_in_the_dtype_its_config_names(lm_folder, tmp_path):
    """The pairs recipe used to load the policy in ``auto`` whatever strong.dtype said, while
    results.json reported the configured dtype."""
    extra = ["strong.dtype=bfloat16", "preference.train.epochs=1"]
    cfg = load_config(None, _overrides(lm_folder, tmp_path, "lora", "[dpo]") + extra)
    store = ArtifactStore(tmp_path / "artifacts")
    assert run_experiment(cfg, store).data["dtypes"]["strong"] == "bfloat16"
    [policy] = store.artifacts("preference_policy", PREFERENCE_TRAIN_VERSION, {})
    trained_from = json.loads((policy.path / "manifest.json").read_text())["params"]["model"]
    assert trained_from == LMSource.from_config(cfg.strong).key
    assert trained_from != LMSource.from_model(str(lm_folder)).key  # auto: float32 in tests


def test_a_trained_policy_as_a_source_carries_its_adapter_merged(lm_folder, tmp_path):
    cfg = load_config(
        None,
        [
            "task.name=pairs_file",
            f"strong.model={lm_folder}",
            "strong.mode=lora",
            "strong.lora.r=4",
            "preference.train.lr=0.05",
        ],
    )
    ctx = StageContext(store=ArtifactStore(tmp_path / "artifacts"), data=None, cfg=cfg)
    start = LMSource.from_model(str(lm_folder))
    prompts = [f"is {s} big ?" for s in SUBJECTS[:4]]
    pairs = Pairs(prompts, [" yes"] * 4, [" no"] * 4, key="hand-made")
    policy = preference_train_stage(ctx, start, cfg.strong, pairs, MethodSpec(name="dpo"))
    assert (policy.path / "adapter").is_dir() and policy.meta["pairs"] == 4
    base = start.load()
    tok = base.tokenizer
    prompt_ids, yes_ids = encode_responses(tok, prompts, [" yes"] * 4, PromptRule(64), 8)
    with torch.no_grad():
        before, _ = response_logprobs(base.model, prompt_ids, yes_ids, 0)
        unmerged, _ = response_logprobs(load_policy(base, policy), prompt_ids, yes_ids, 0)
        merged, _ = response_logprobs(
            policy_source(start, policy).load().model, prompt_ids, yes_ids, 0
        )
    torch.testing.assert_close(merged, unmerged, atol=1e-4, rtol=1e-4)
    assert bool((merged > before).all())  # the chosen reply became more likely


def test_replies_that_did_not_end_are_trained_without_eos(lm_folder):
    tok = load_causal_lm(str(lm_folder)).tokenizer
    pairs = Pairs(
        ["is cat big ?"] * 2,
        [" yes"] * 2,
        [" no"] * 2,
        key="hand-made",
        chosen_ended=[True, False],
        rejected_ended=[False, True],
    )
    tokenized = tokenize_pairs(tok, pairs, PreferenceConfig(), PromptRule(128))
    yes, no = (tok(text, add_special_tokens=False)["input_ids"] for text in (" yes", " no"))
    assert tokenized.chosen_ids == [yes + [tok.eos_token_id], yes]
    assert tokenized.rejected_ids == [no, no + [tok.eos_token_id]]


def test_no_pairs_is_a_clear_error_before_any_training(lm_folder, tmp_path):
    cfg = load_config(None, [f"strong.model={lm_folder}", "strong.mode=lora"])
    ctx = StageContext(store=ArtifactStore(tmp_path / "artifacts"), data=None, cfg=cfg)
    empty = Pairs([], [], [], key="nothing judged")
    start = LMSource.from_model(str(lm_folder))
    with pytest.raises(WeakliftError, match="no pairs to train dpo on"):
        preference_train_stage(ctx, start, cfg.strong, empty, MethodSpec(name="dpo"))
    assert not list((tmp_path / "artifacts").glob("preference_policy/*"))


def test_weak_judges_train_a_student_on_judged_pairs_and_report_pgr(lm_folder, tmp_path):
    texts = [f"is {s} big ?" for s in SUBJECTS] + GOOD + BAD
    judges = [
        make_tiny_lm(tmp_path / f"judge{i}", word_tokenizer(texts), seed=i + 1) for i in range(2)
    ]
    weak = ", ".join(f"{{model: {j}}}" for j in judges)
    overrides = _overrides(lm_folder, tmp_path, "lora", "[dpo]") + [
        f"weak=[{weak}]",
        "preference.weak_judges=true",
        "preference.candidates.num=3",
        "preference.candidates.max_new_tokens=5",
    ]
    cfg = load_config(None, overrides)
    store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(cfg, store).data
    student, ceiling = results["policies"]["dpo · weak judges"], results["policies"]["dpo"]
    assert dict(store.executions)["judge_scores"] == 4  # 2 judges × (candidates, test pairs)
    assert results["judged_pairs"]["prompts"] == 32
    assert results["judged_pairs"]["pairs"] == 32 - sum(results["judged_pairs"]["dropped"].values())
    # the judges' test accuracy, by hand: uniform weights over length-normalised log-likelihoods
    lms = [load_causal_lm(str(j), device="cpu") for j in judges]
    ctx = StageContext(store=store, data=load_task(cfg.task), cfg=cfg)
    splits_stage(ctx)
    pairs = file_pairs(ctx, "test")
    options = [[c, r] for c, r in zip(pairs.chosen, pairs.rejected, strict=True)]
    scores = np.mean(
        [score_candidates(lm, pairs.prompts, options, PromptRule(128), 128) for lm in lms], 0
    )
    assert results["weak"]["accuracy"] == pytest.approx(float(np.mean(scores[:, 0] > scores[:, 1])))
    w, s, c = results["weak"]["accuracy"], student["reward_accuracy"], ceiling["reward_accuracy"]
    if c != w:
        assert student["pgr"] == pytest.approx((s - w) / (c - w))
    assert "weak judges (" in pairs_table(results)
    again = ArtifactStore(tmp_path / "artifacts")
    run_experiment(cfg, again)
    assert sum(again.executions.values()) == 0


def test_pairs_with_the_same_prompt_share_a_split(tmp_path):
    rows = [
        {"prompt": f"prompt {i % 10}", "chosen": f"good {i}", "rejected": f"bad {i}"}
        for i in range(40)
    ]  # ten prompts, four pairs each
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(
        None,
        [
            "task.name=pairs_file",
            f"task.path={path}",
            "strong.mode=lora",
            "split.weak_train=8",  # two prompts: weak_holdout takes one whole group
            "split.transfer=16",
            "split.val=4",
            "split.test=12",
        ],
    )
    ctx = StageContext(store=ArtifactStore(tmp_path / "a"), data=load_task(cfg.task), cfg=cfg)
    splits_stage(ctx)
    where = {}
    for name in ("weak_train", "transfer", "val", "test"):
        for i in ctx.splits[name]:
            assert where.setdefault(ctx.data.prompts[i], name) == name
    assert len(ctx.splits["transfer"]) == 16 and len(ctx.splits["test"]) == 12


def test_a_sweep_over_a_pairs_config_ends_with_a_report_and_collects_each_model(
    lm_folder, tmp_path
):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: pairs\ngrid:\n  preference.train.lr: [0.03, 0.01]\n")
    overrides = _overrides(lm_folder, tmp_path, "lora", "[dpo]") + [
        "preference.train.epochs=1",
        "preference.weak_judges=true",
        f"weak.model={lm_folder}",
        "tracking.backend=mlflow",
        f"tracking.uri={(tmp_path / 'mlruns').as_uri()}",
    ]
    if importlib.util.find_spec("mlflow") is None:
        overrides = overrides[:-2]
    assert main(["sweep", str(sweep), *overrides]) == 0
    assert "weaklift sweep pairs" in (tmp_path / "report.html").read_text()
    assert main(["collect", str(tmp_path)]) == 0
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert table.groupby("run").role.apply(sorted).map(tuple).unique().tolist() == [
        ("ceiling", "reference", "student", "weak")
    ]
    for run_dir in (tmp_path / "runs").iterdir():
        results = json.loads((run_dir / "results.json").read_text())
        mine = table[table.run == run_dir.name].set_index("role")
        student = results["policies"]["dpo · weak judges"]
        assert mine.loc["student", "pgr"] == pytest.approx(student["pgr"])
        assert mine.loc["student", "method"] == "dpo · weak judges"
        assert mine.loc["reference", "score"] == pytest.approx(results["reference"]["accuracy"])
        assert mine.loc["weak", "accuracy"] == pytest.approx(results["weak"]["accuracy"])
        assert (mine.kind == "pairs").all() and (mine.metric == "accuracy").all()
        metrics = results_metrics(results)
        assert metrics["reference/accuracy"] == pytest.approx(results["reference"]["accuracy"])
        assert metrics[metric_name("student", "dpo · weak judges", "pgr")] == pytest.approx(
            student["pgr"]
        )


def test_pairs_runs_refuse_what_they_do_not_run(lm_folder, tmp_path, capsys):
    base = _overrides(lm_folder, tmp_path, "lora", "[dpo]")
    for extra, message in [
        ("seeds=2", "seeds: a pairs run trains one seed"),
        ("controls=true", "controls: pairs runs have no oracle"),
        ("train.select=weak_agreement", "train.select: pairs runs train for the fixed budget"),
    ]:
        assert main(["validate", *base, extra]) == 2
        assert message in capsys.readouterr().err
