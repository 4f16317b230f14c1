"""Config: overrides parse, bad values fail before any work, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from weaklift.config_files import load_config, parse_overrides
from weaklift.errors import WeakliftError


def test_defaults_are_the_default_experiment():
    cfg = load_config()
    assert (cfg.task.name, cfg.weak.model, cfg.strong.model) == (
        "facts",
        "smollm2-135m",
        "gemma3-270m",
    )
    assert cfg.weak.mode == cfg.strong.mode == "probe"
    assert [m.label for m in cfg.methods] == ["xent", "logconf"]


def test_overrides_nest_and_parse_yaml_values():
    assert parse_overrides(["a.b=1", "a.c=x", "methods=[xent,logconf]"]) == {
        "a": {"b": 1, "c": "x"},
        "methods": ["xent", "logconf"],
    }
    cfg = load_config(None, ["split.test=50", "strong.mode=lora", "weak=minilm-l6", "seed=3"])
    assert cfg.split.test == 50 and cfg.strong.mode == "lora" and cfg.weak.model == "minilm-l6"
    assert cfg.strong.model == "gemma3-270m"  # untouched side keeps its default


def test_method_options_live_in_their_own_block(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("methods:\n  - xent\n  - {name: logconf, alpha: 0.75, warmup: 0.1}\n")
    cfg = load_config(path)
    assert cfg.methods[1].options == {"alpha": 0.75, "warmup": 0.1}
    assert cfg.methods[1].label == "logconf(alpha=0.75,warmup=0.1)"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("split.test=-1", "split.test"),
        ("strong.mode=quantum", "strong.mode"),
        ("methods=[xent,nosuch]", "methods.1"),
        ("train.probe.lr=0", "train.probe.lr"),
        ("splitt.test=3", "splitt"),
        ("methods=[{name: logconf, alpha: 2}]", "methods.0.alpha"),
        ("methods=[{name: logconf, beta: 2}]", "methods.0.beta"),
    ],
)
def test_bad_values_name_the_field(override, field):
    with pytest.raises(WeakliftError, match=f"field {field}|{field}"):
        load_config(None, [override])


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(WeakliftError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(WeakliftError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_configs_validate(path, tmp_path):
    if path.name.startswith("sweep_"):  # a sweep file: a config plus grid/zip/only_weaker
        from weaklift.sweep import load_sweep

        points, _ = load_sweep(path).expand()
        assert points
        return
    if path.name == "suite.yaml":  # the suite: a config plus sizes; its tasks need data folders
        from weaklift.suite import load_suite
        from weaklift.tasks.suite import SUITE_TASKS

        for folder in set(SUITE_TASKS.values()):
            (tmp_path / folder).mkdir()
        points, _ = load_suite(path, tmp_path)[0].expand()  # every task's config validates
        assert [p.config.task.name for p in points] == list(SUITE_TASKS)
        return
    cfg = load_config(path)
    assert cfg.methods and cfg.weak_members


def test_text_fields_keep_braces_and_other_fields_parse_yaml():
    parsed = parse_overrides(
        [
            "task.template={sentence}",
            'task.path="{odd} name.csv"',
            "task.label_column=1",
            "weak.model={x}",
            "methods={name: logconf, alpha: 0.75}",
            "strong.lora.target_modules=[q_proj]",
            "seed=3",
        ]
    )
    assert parsed["task"] == {
        "template": "{sentence}",
        "path": "{odd} name.csv",
        "label_column": "1",
    }
    assert parsed["weak"] == {"model": "{x}"}
    assert parsed["methods"] == {"name": "logconf", "alpha": 0.75}
    assert parsed["strong"]["lora"]["target_modules"] == ["q_proj"] and parsed["seed"] == 3
    cfg = load_config(None, ["task.name=file", "task.template={a}\\n{b}", "task.path=x.csv"])
    assert cfg.task.template == "{a}\\n{b}"


def test_fsdp_is_for_full_finetuning_only():
    assert load_config(None, ["strong.mode=full", "strong.fsdp=true"]).strong.fsdp
    with pytest.raises(WeakliftError, match="strong.*fsdp shards full finetuning.*set mode=full"):
        load_config(None, ["strong.mode=lora", "strong.fsdp=true"])


@pytest.mark.parametrize(
    ("config", "command"),
    [("configs/sweep_facts.yaml", "weaklift sweep FILE"), ("configs/suite.yaml", "weaklift suite")],
)
def test_a_sweep_or_suite_file_given_as_a_run_config_names_its_command(config, command):
    root = Path(__file__).resolve().parents[1]
    with pytest.raises(WeakliftError, match="not a run config's key; this file is read by") as err:
        load_config(root / config)
    assert command in str(err.value)
