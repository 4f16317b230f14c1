"""Bootstrapping (Burns et al. 2023 §4.3.1): every rung is a cached stage and reported."""

from __future__ import annotations

import pytest

from tests.test_pipeline import _overrides, workdir  # noqa: F401  (shared tiny models and data)
from tests.tiny_models import make_tiny_model
from weaklift.config import load_config
from weaklift.errors import WeakliftError
from weaklift.pipeline import run_experiment
from weaklift.store import ArtifactStore


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
    assert store.executions["weak_model"] == 1 and store.executions["rung"] == 2
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


def test_ladder_needs_three_models_and_excludes_weak_strong():
    with pytest.raises(WeakliftError, match="ladder"):
        load_config(None, ["ladder=[minilm-l6, gemma3-270m]"])
    with pytest.raises(WeakliftError, match="ladder"):
        load_config(None, ["ladder=[minilm-l6, smollm2-135m, gemma3-270m]", "weak=minilm-l6"])
