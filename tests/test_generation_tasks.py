"""Generation tasks: SLURP and GSM8K release files, the generic file task, kind resolution."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from weaklift.config import TaskConfig
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.generation_metrics import METRICS
from weaklift.tasks import load_task, task_kind
from weaklift.tasks.generation import slurp_example

DATA = Path(os.environ.get("WEAKLIFT_DATA", Path(__file__).parents[2] / "shared" / "data"))
RECORD = {
    "sentence": "siri what is one american dollar in japanese yen",
    "scenario": "qa",
    "action": "currency",
    "intent": "qa_currency",
    "tokens": [
        {"surface": w}
        for w in ["siri", "what", "is", "one", "American", "dollar", "in", "japanese", "yen"]
    ],
    "entities": [
        {"span": [4, 5], "type": "currency_name"},
        {"span": [7, 8], "type": "currency_name"},
    ],
}


def _need(folder: str) -> Path:
    if not (DATA / folder).is_dir():
        pytest.skip(f"{DATA / folder} not present (set WEAKLIFT_DATA)")
    return DATA / folder


def test_slurp_target_serialises_scenario_action_and_lower_cased_slots():
    prompt, target = slurp_example(RECORD)
    assert prompt == "Utterance: siri what is one american dollar in japanese yen\nSemantics:"
    assert target == "qa_currency | currency_name=american dollar | currency_name=japanese yen"
    assert METRICS["slurp"].summarize(METRICS["slurp"].stats([target], [target]))["slu_f1"] == 1.0


def test_slurp_release_files_load():
    data = load_task(TaskConfig(name="slurp", path=str(_need("slurp"))))
    assert len(data.texts) == 2033 + 2974 and data.metric == "slurp"
    assert all(t.split(" | ")[0].count("_") >= 1 for t in data.targets)


def test_gsm8k_target_is_the_solution_and_metric_the_final_number():
    data = load_task(TaskConfig(name="gsm8k", path=str(_need("gsm8k") / "test.jsonl")))
    assert len(data.texts) == 1319 and data.texts[0].startswith("Question: Janet")
    assert data.targets[0].endswith("#### 18")
    stats = METRICS["final_number"].stats(["she makes $18\n#### 18"], [data.targets[0]])
    assert METRICS["final_number"].summarize(stats)["accuracy"] == 1.0


def test_file_task_with_kind_generation(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps({"q": f"q{i}", "a": f" a{i} "}) for i in range(5)))
    cfg = TaskConfig(name="file", path=str(path), kind="generation", template="Q: {q}\nA:",
                     target_column="a")  # fmt: skip
    data = load_task(cfg)
    assert data.texts[1] == "Q: q1\nA:" and data.targets[1] == "a1" and data.metric == "exact_match"
    assert task_kind(cfg) == "generation"
    sub = load_task(cfg.model_copy(update={"max_examples": 3}))
    assert len(sub.texts) == len(sub.targets) == 3


def test_file_task_needs_a_target_column(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"q": "x", "a": "y"}))
    cfg = TaskConfig(name="file", path=str(path), kind="generation", template="Q: {q}")
    with pytest.raises(WeakliftError, match="task.target_column"):
        load_task(cfg)


def test_builtin_generation_tasks_need_a_path_and_refuse_file_options():
    with pytest.raises(WeakliftError, match="task.path"):
        load_task(TaskConfig(name="gsm8k"))
    with pytest.raises(WeakliftError, match="task `file`"):
        load_task(TaskConfig(name="slurp", path="x", template="{a}"))


def test_default_methods_are_refused_for_a_generation_task():
    with pytest.raises(WeakliftError, match="'xent' is not a generation method"):
        load_config(None, ["task.name=slurp", "weak.mode=lora", "strong.mode=lora"])
