"""One recipe per kind: config rules in recipes, one merge, a schema that imports no task, and
the kind-specific defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from weaklift.config_files import load_config, merge_config
from weaklift.errors import WeakliftError
from weaklift.recipes import RECIPES, recipe_for
from weaklift.training.classifier import LoopConfig

PACKAGE = Path(__file__).resolve().parent.parent / "weaklift"


def test_the_schema_imports_no_task_method_or_model_module():
    code = "import sys, weaklift.config; print(sorted(m for m in sys.modules if m.startswith('weaklift')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(out.stdout)  # a printed list of module names
    assert loaded == [
        "weaklift",
        "weaklift.config",
        "weaklift.config_base",
        "weaklift.config_generation",
    ]


def test_no_module_is_over_500_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert long == {}


def test_an_override_of_a_model_option_keeps_the_model_named_in_the_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("weak: minilm-l6\nstrong: gemma3-270m\n")
    cfg = load_config(config, ["weak.max_length=64"])
    assert cfg.weak.model == "minilm-l6" and cfg.weak.max_length == 64
    assert merge_config({"weak": "tfidf"}, {"weak": {"seed": 1}}) == {
        "weak": {"model": "tfidf", "seed": 1}
    }


def test_an_option_override_of_an_ensemble_is_an_error_not_a_new_model(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("weak: [minilm-l6, tfidf]\n")
    with pytest.raises(WeakliftError, match="weak is a list of members here"):
        load_config(config, ["weak.max_length=64"])


def test_each_kind_fills_its_own_defaults_and_classification_keeps_three_seeds():
    classification = load_config(None, [])
    assert classification.seeds == 3 and classification.controls is True
    generation = load_config(
        None, ["task.name=slurp", "methods=[sft]", "weak.mode=lora", "strong.mode=lora"]
    )
    assert generation.seeds == 1 and generation.controls is False
    assert recipe_for(generation) is RECIPES["generation"]
    assert recipe_for(classification) is RECIPES["classification"]


def test_preference_settings_on_a_classification_task_are_refused():
    with pytest.raises(WeakliftError, match="preference: task 'facts' is a classification task"):
        load_config(None, ["strong.mode=lora", "preference.losses=[dpo]"])


def test_generation_settings_on_a_classification_task_are_refused_not_ignored():
    with pytest.raises(WeakliftError, match="generation: task 'facts' is a classification task"):
        load_config(None, ["generation.beams=3"])


def test_the_classifier_loop_defaults_to_the_configs_final_epoch_rule():
    assert LoopConfig(epochs=1, batch_size=1, lr=1.0).select_best is False
