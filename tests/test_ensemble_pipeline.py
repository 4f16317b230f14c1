"""Ensembles of weak supervisors end to end (Cui et al. 2024): members cached one by one, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from tests.test_pipeline import _overrides, workdir  # noqa: F401  (shared tiny models and data)
from weaklift.config_files import load_config
from weaklift.models.tfidf import TfidfClassifier
from weaklift.pipeline import run_experiment
from weaklift.store import ArtifactStore

TEXTS = ["good film", "bad film", "great plot", "awful plot", "good actors", "dull story"] * 5
LABELS = np.array([1, 0, 1, 0, 1, 0] * 5)


def test_tfidf_member_matches_sklearn_and_survives_save_load(tmp_path):
    model = TfidfClassifier(num_classes=2).fit(TEXTS, LABELS)
    queries = ["good story", "awful film", "unseen words"]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit(TEXTS)
    reference = LogisticRegression(max_iter=2000).fit(vectorizer.transform(TEXTS), LABELS)
    assert np.allclose(
        model.predict_proba(queries),
        reference.predict_proba(vectorizer.transform(queries)),
        atol=1e-5,
    )
    model.save(tmp_path)
    assert not list(tmp_path.glob("*.pkl"))
    assert np.allclose(
        TfidfClassifier.load(tmp_path, 2).predict_proba(queries), model.predict_proba(queries)
    )


def _members(workdir, n):  # noqa: F811
    all_members = [
        "{model: tfidf}",
        f"{{model: {workdir['weak']}}}",
        f"{{model: {workdir['weak']}, seed: 7, subset: bootstrap}}",
    ]
    return "weak=[" + ", ".join(all_members[:n]) + "]"


def test_members_are_cached_independently(workdir, tmp_path):  # noqa: F811
    two = load_config(None, _overrides(workdir, tmp_path, _members(workdir, 2), "methods=[xent]"))
    run_experiment(two, ArtifactStore(tmp_path / "artifacts"))
    three = load_config(None, _overrides(workdir, tmp_path, _members(workdir, 3), "methods=[xent]"))
    store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(three, store)
    assert store.executions["weak_model"] == 1  # only the new member trains
    assert store.executions["weak_labels"] == 1
    assert store.executions.get("ceiling", 0) == 0
    assert len(results["weak_members"]) == 3


def test_mixed_family_ensemble_end_to_end(workdir, tmp_path):  # noqa: F811
    methods = "methods=[xent, multi_naive, joint, bayes]"
    cfg = load_config(None, _overrides(workdir, tmp_path, _members(workdir, 3), methods))
    results = run_experiment(cfg, ArtifactStore(tmp_path / "artifacts")).data
    assert len(results["weak_members"]) == 3 and set(results["ensemble"]) == {
        "mean",
        "vote",
        "logpool",
    }
    assert results["best_member"] in results["weak_members"]
    holdout = {label: m["holdout_accuracy"] for label, m in results["weak_members"].items()}
    assert results["best_member"] == max(holdout, key=holdout.get)  # weak-side data, not test
    best = results["weak_members"][results["best_member"]]["accuracy"]
    ceiling = results["ceiling"]["accuracy"]
    for label, student in results["students"].items():
        for key in (
            "pgr_ci",
            "pgr_best_member_ci",
            "uncertainty_correct",
            "uncertainty_incorrect",
            "ece",
        ):
            assert key in student, (label, key)
        if ceiling != best:
            assert student["pgr_best_member"] == pytest.approx(
                (student["accuracy"] - best) / (ceiling - best)
            )
    bayes = results["students"]["bayes"]
    assert 0 < bayes["uncertainty_correct"] <= 1  # K/S of a Dirichlet lies in (0, 1]


def _write_three_class_task(path):
    import json

    rng = np.random.default_rng(1)
    cues = {
        "pos": ["good", "great", "superb"],
        "neg": ["bad", "awful", "poor"],
        "meh": ["dull", "boring", "fine"],
    }
    rows = []
    for i in range(180):
        label = ["pos", "neg", "meh"][i % 3]
        words = [
            *rng.choice(["the", "film", "was", "plot", "story"], size=3),
            rng.choice(cues[label]),
        ]
        rows.append({"review": " ".join(words), "sentiment": label})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_ensemble_methods_on_a_multiclass_task_in_finetune_modes(workdir, tmp_path, mode):  # noqa: F811
    data = _write_three_class_task(tmp_path / "three.jsonl")
    overrides = _overrides(
        workdir,
        tmp_path,
        _members(workdir, 2),
        f"task.path={data}",
        f"strong.mode={mode}",
        "split.weak_train=45",
        "split.transfer=45",
        "split.val=21",
        "split.test=45",
        "methods=[logconf, {name: multi_naive, weights: dynamic}, {name: joint, combine: vote}, {name: bayes, aux_alpha: 0.5}]",
    )
    results = run_experiment(
        load_config(None, overrides), ArtifactStore(tmp_path / "artifacts")
    ).data
    assert results["label_names"] == ["meh", "neg", "pos"]
    assert len(results["students"]) == 4
    for student in results["students"].values():
        assert 0 <= student["accuracy"] <= 1 and not np.isnan(student["auroc"])
