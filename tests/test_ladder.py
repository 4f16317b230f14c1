"""Bootstrapping (Burns et al. 2023 §4.3.1): every rung is a cached stage and reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.test_pipeline import _overrides, workdir  # noqa: F401  (shared tiny models and data)
from tests.tiny_models import make_tiny_model
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.pipeline import run_experiment
from weaklift.store import ArtifactStore, stable_hash


def _ladder_overrides(workdir, tmp_path):  # noqa: F811
    mid = make_tiny_model(tmp_path / "mid", arch="llama", texts=["good bad film plot"])
    base = [
        o
        for o in _overrides(workdir, tmp_path, "methods=[xent]")
        if not o.startswith(("weak.", "strong."))
    ]
    return [*base, f"ladder=[{workdir['weak']}, {mid}, {workdir['strong']}]"]


def test_ladder_of_three_models_caches_every_rung(workdir, tmp_path):  # noqa: F811
    cfg = load_config(None, _ladder_overrides(workdir, tmp_path))
    assert cfg.weak.model == workdir["weak"] and cfg.strong.model == workdir["strong"]
    store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(cfg, store).data
    # the middle rung is cross-fitted (two fold models), the last rung trains once on all of transfer
    assert store.executions["weak_model"] == 1 and store.executions["rung"] == 3
    assert store.executions["crossfit"] == 1
    ladder = results["ladder"]["xent"]
    assert [r["model"] for r in ladder["rungs"]] == [str(tmp_path / "mid"), workdir["strong"]]
    weak, ceiling = results["weak"]["accuracy"], results["ceiling"]["accuracy"]
    for rung in ladder["rungs"]:
        if ceiling != weak:
            assert rung["pgr"] == pytest.approx((rung["accuracy"] - weak) / (ceiling - weak))
    assert ladder["direct"]["accuracy"] == results["students"]["xent"]["accuracy"]

    again = ArtifactStore(tmp_path / "artifacts")
    run_experiment(cfg, again)
    assert sum(again.executions.values()) == 0


def test_intermediate_rungs_label_only_examples_they_were_not_trained_on(workdir, tmp_path):  # noqa: F811
    """Regression: each rung labelled the very transfer examples it was trained on."""
    cfg = load_config(None, _ladder_overrides(workdir, tmp_path))
    run_experiment(cfg, ArtifactStore(tmp_path / "artifacts"))
    crossfit_dir = next((tmp_path / "artifacts" / "crossfit").iterdir())
    upstream = json.loads((crossfit_dir / "manifest.json").read_text())["upstream"]
    folds = [tmp_path / "artifacts" / "rung" / upstream[f"fold{i}"] for i in (0, 1)]
    fold_rows = [
        json.loads((fold / "manifest.json").read_text())["params"]["rows"] for fold in folds
    ]
    n = cfg.split.transfer
    order = np.random.default_rng(cfg.seed).permutation(n)
    halves = (np.sort(order[: n // 2]), np.sort(order[n // 2 :]))
    assert fold_rows == [stable_hash(h.tolist()) for h in halves]  # each fold saw one half
    combined = load_file(str(crossfit_dir / "predictions.safetensors"))["transfer"]
    a, b = (load_file(str(f / "predictions.safetensors"))["transfer"] for f in folds)
    assert np.array_equal(combined[halves[1]], a[halves[1]])  # fold 0 labels the half it never saw
    assert np.array_equal(combined[halves[0]], b[halves[0]])
    last_rung = [
        d
        for d in (tmp_path / "artifacts" / "rung").iterdir()
        if json.loads((d / "manifest.json").read_text())["upstream"]["targets"] == crossfit_dir.name
    ]
    assert len(last_rung) == 1  # the strong rung learns the out-of-fold labels


def test_ladder_rejects_multi_weak_methods_at_validation():
    """Regression: a multi-weak method on a ladder passed validate and failed after training."""
    with pytest.raises(WeakliftError, match="methods.0: multi_naive needs several weak members"):
        load_config(
            None, ["ladder=[minilm-l6, smollm2-135m, gemma3-270m]", "methods=[multi_naive]"]
        )


def test_ladder_needs_three_models_and_excludes_weak_strong():
    with pytest.raises(WeakliftError, match="ladder"):
        load_config(None, ["ladder=[minilm-l6, gemma3-270m]"])
    with pytest.raises(WeakliftError, match="ladder"):
        load_config(None, ["ladder=[minilm-l6, smollm2-135m, gemma3-270m]", "weak=minilm-l6"])
