"""Numbers people can trust: no GT leaks to weak models or students, selection rules, seeds,
controls, genft without test inputs, dynamic ensemble weights from weak-side accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.test_pipeline import _overrides, _write_task, workdir  # noqa: F401
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.metrics import pgr
from weaklift.pipeline import run_experiment
from weaklift.recipes import classification
from weaklift.splits import make_splits
from weaklift.stages import data as data_stages
from weaklift.stages.evaluation import summarise_seeds
from weaklift.stages.training import train_stage
from weaklift.store import ArtifactStore, save_arrays, save_json
from weaklift.tasks import load_task


def _manifests(root, stage):
    folder = root / "artifacts" / stage
    return [json.loads((d / "manifest.json").read_text()) for d in sorted(folder.iterdir())]


def _flip_labels(source, target, rows):
    lines = source.read_text().splitlines()
    for i in rows:
        row = json.loads(lines[i])
        row["sentiment"] = "neg" if row["sentiment"] == "pos" else "pos"
        lines[i] = json.dumps(row)
    target.write_text("\n".join(lines) + "\n")
    return target


def test_ground_truth_of_val_and_test_reaches_no_weak_model_and_no_student(workdir, tmp_path):  # noqa: F811
    """Regression: weak models selected their epoch on GT(val), and the best weak member was the
    one most accurate on test. Flipping every val and test label must change nothing upstream
    of scoring: weak labels, the best member, students and controls stay bit-identical."""
    weak = f"weak=[{{model: tfidf}}, {{model: {workdir['weak']}}}]"
    extra = (
        "train.select=weak_agreement",
        "controls=true",
        weak,
        "methods=[xent,logconf]",
        "train.probe.lr=0.05",  # probes that move, so the selected epoch depends on its labels
        "train.probe.epochs=8",
    )
    cfg = load_config(None, _overrides(workdir, tmp_path / "a", *extra))
    data = load_task(cfg.task)
    splits = make_splits(data.labels, cfg.split, cfg.seed)
    original = _write_task(tmp_path / "same.jsonl")  # the shared task's rows, same order
    rows = [json.loads(line)["review"] for line in original.read_text().splitlines()]
    assert all(text.endswith(row) for row, text in zip(rows, data.texts, strict=True))
    val_and_test = np.concatenate([splits.val, splits.test])
    flipped = _flip_labels(original, tmp_path / "flipped.jsonl", val_and_test)
    runs = {}
    for name, path in (("a", original), ("b", flipped)):
        overrides = _overrides(workdir, tmp_path / name, *extra, f"task.path={path}")
        runs[name] = run_experiment(load_config(None, overrides)).data
    a, b = runs["a"], runs["b"]
    assert a["best_member"] == b["best_member"]
    assert a["weak"]["accuracy"] == pytest.approx(1 - b["weak"]["accuracy"])  # test really flipped
    for stage in ("weak_labels", "student", "control"):
        arrays = {
            name: sorted(
                tuple(np.round(v, 6).tobytes() for v in load_file(str(f)).values())
                for f in (tmp_path / name / "artifacts" / stage).glob("*/*.safetensors")
            )
            for name in ("a", "b")
        }
        assert arrays["a"] == arrays["b"], stage


def test_selection_rule_default_is_final_and_weak_models_select_on_weak_holdout(workdir, tmp_path):  # noqa: F811
    cfg = load_config(None, _overrides(workdir, tmp_path / "final", "methods=[xent]"))
    assert cfg.train.select == "final"
    results = run_experiment(cfg).data
    assert results["selection"]["rule"] == "final"
    for stage in ("weak_model", "ceiling", "student"):
        for manifest in _manifests(tmp_path / "final", stage):
            history = manifest["meta"]["history"]
            assert history["best_epoch"] == len(history["train_loss"]) - 1  # the final model
    agree = load_config(
        None,
        _overrides(workdir, tmp_path / "agree", "methods=[xent]", "train.select=weak_agreement"),
    )
    run_experiment(agree)
    (weak,) = _manifests(tmp_path / "agree", "weak_model")
    assert weak["params"]["val_split"] == "weak_holdout" and weak["params"]["loop"]["select_best"]
    history = weak["meta"]["history"]
    assert history["best_epoch"] == int(np.argmax(history["val_accuracy"]))


def test_select_best_is_replaced_with_a_clear_error():
    with pytest.raises(WeakliftError, match="select_best was replaced by train.select"):
        load_config(None, ["train.select_best=true"])


def test_seeds_train_every_model_per_seed_and_extract_features_once(workdir, tmp_path):  # noqa: F811
    cfg = load_config(None, _overrides(workdir, tmp_path, "methods=[xent]", "seeds=[3, 5]"))
    store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(cfg, store).data
    assert store.executions["features"] == 2  # one pass per model over both seeds' rows
    assert store.executions["weak_model"] == store.executions["ceiling"] == 2
    assert store.executions["student"] == store.executions["evaluation"] == 2
    assert results["seeds"] == [3, 5] and list(results["per_seed"]) == ["3", "5"]
    per_seed = results["per_seed"]
    for side in ("weak", "ceiling"):
        accuracies = [per_seed[s][side]["accuracy"] for s in ("3", "5")]
        assert results[side]["accuracy"] == pytest.approx(np.mean(accuracies))
        assert results[side]["accuracy_sd"] == pytest.approx(np.std(accuracies, ddof=1))
    student = results["students"]["xent"]
    assert student["pgr"] == pytest.approx(
        pgr(student["accuracy"], results["weak"]["accuracy"], results["ceiling"]["accuracy"]),
        nan_ok=True,
    )
    assert len(student["pgr_per_seed"]) == 2 and len(student["pgr_ci"]) == 2
    assert load_config(None, ["seeds=3", "seed=4"]).run_seeds == [4, 5, 6]
    with pytest.raises(WeakliftError, match="seeds"):
        load_config(None, ["seeds=[1, 1]"])


def test_controls_oracle_matches_the_ceiling_and_shuffled_permutes_weak_labels(
    workdir,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    requests = []

    def spy(ctx, req):
        requests.append(req)
        return train_stage(ctx, req)

    monkeypatch.setattr(classification, "train_stage", spy)
    cfg = load_config(None, _overrides(workdir, tmp_path, "methods=[xent]", "controls=true"))
    results = run_experiment(cfg).data
    by_stage = {(r.stage, r.targets_key): r for r in requests}
    student = next(r for (stage, _), r in by_stage.items() if stage == "student")
    oracle, shuffled = (r for (stage, _), r in by_stage.items() if stage == "control")
    permutation = np.random.default_rng(cfg.seed).permutation(len(student.targets))
    assert np.array_equal(shuffled.targets, student.targets[permutation])
    assert oracle.targets.sum(1).tolist() == [1.0] * len(oracle.targets)  # one-hot GT
    assert oracle.model_cfg == shuffled.model_cfg == student.model_cfg
    controls = results["controls"]
    assert set(controls) == {"oracle", "shuffled"}
    # with the final-model rule the oracle is the ceiling's computation through the student path
    assert controls["oracle"]["accuracy"] == results["ceiling"]["accuracy"]
    assert controls["oracle"]["pgr_ci"] and results["warnings"] == []
    assert {m["params"]["method"]["name"] for m in _manifests(tmp_path, "control")} == {"xent"}


def _fake_evaluation(store, seed, correct, oracle):
    def compute(out):
        summary = {"accuracy": 0.0, "auroc": 0.5, "ece": 0.0}
        metrics = {
            "num_test": len(correct["weak"]),
            "weak": {**summary, "accuracy": float(correct["weak"].mean())},
            "ceiling": {**summary, "accuracy": float(correct["ceiling"].mean())},
            "weak_members": {"w": summary},
            "ensemble": {},
            "best_member": "w",
            "students": {},
            "controls": {"oracle": {**summary, "accuracy": float(oracle.mean()), "agreement": 1.0}},
            "ladder": {},
        }
        save_json(out, "metrics", metrics)
        arrays = {**correct, "best_member": correct["weak"], "control/oracle": oracle}
        save_arrays(out, {k: v.astype(np.uint8) for k, v in arrays.items()}, name="correct")

    return store.get_or_compute("evaluation", 0, {"seed": seed, "o": oracle.tolist()}, {}, compute)


def test_oracle_warning_fires_only_when_it_misses_the_ceiling_beyond_its_ci(tmp_path):
    store = ArtifactStore(tmp_path)
    rng = np.random.default_rng(0)
    correct = {"weak": rng.random(400) < 0.6, "ceiling": rng.random(400) < 0.8}
    fine = [_fake_evaluation(store, s, correct, correct["ceiling"]) for s in (0, 1)]
    assert summarise_seeds([0, 1], fine, [], 200)["warnings"] == []
    broken = [_fake_evaluation(store, s, correct, rng.random(400) < 0.5) for s in (0, 1)]
    summary = summarise_seeds([0, 1], broken, [], 200)
    assert len(summary["warnings"]) == 1 and "oracle" in summary["warnings"][0]
    assert summary["controls"]["oracle"]["minus_ceiling_ci"][1] < 0


def test_genft_leaves_test_inputs_out_by_default(workdir, tmp_path, monkeypatch):  # noqa: F811
    """Regression: generative finetuning read every split's inputs, test included."""
    seen = {}

    def fake_finetune(model, texts, genft, out, seed, dtype):
        seen["texts"] = list(texts)
        raise RuntimeError("stop after capturing the texts")

    monkeypatch.setattr(data_stages, "generative_finetune", fake_finetune)
    for exclude in (True, False):
        overrides = _overrides(
            workdir,
            tmp_path / str(exclude),
            "methods=[xent]",
            "strong.genft.enabled=true",
            f"strong.genft.exclude_test={str(exclude).lower()}",
        )
        cfg = load_config(None, overrides)
        with pytest.raises(RuntimeError, match="capturing"):
            run_experiment(cfg)
        data = load_task(cfg.task)
        splits = make_splits(data.labels, cfg.split, cfg.seed)
        test_texts = {data.texts[i] for i in splits.test}
        transfer_texts = {data.texts[i] for i in splits.transfer}
        assert transfer_texts <= set(seen["texts"])
        assert bool(test_texts & set(seen["texts"])) is (not exclude)


def test_dynamic_multi_naive_weights_come_from_weak_holdout_accuracy(workdir, tmp_path):  # noqa: F811
    weak = f"weak=[{{model: tfidf}}, {{model: {workdir['weak']}}}]"
    method = "methods=[{name: multi_naive, weights: dynamic}]"
    results = run_experiment(load_config(None, _overrides(workdir, tmp_path, weak, method))).data
    (student,) = _manifests(tmp_path, "student")
    expected = [round(m["holdout_accuracy"], 6) for m in results["weak_members"].values()]
    assert student["params"]["method"]["options"]["member_accuracy"] == expected
    assert list(results["students"]) == ["multi_naive(weights=dynamic)"]


def test_a_models_own_seed_moves_with_the_run_seed():
    from types import SimpleNamespace

    from weaklift.config import ModelConfig
    from weaklift.stages.training import model_seed

    own, plain = ModelConfig(model="m", seed=7), ModelConfig(model="m")
    for offset, run_seed in ((0, 3), (2, 5)):
        ctx = SimpleNamespace(cfg=SimpleNamespace(seed=run_seed), seed_offset=offset)
        assert model_seed(ctx, own) == 7 + offset and model_seed(ctx, plain) == run_seed
