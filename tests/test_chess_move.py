"""Chess in generation form: prompt and target on hand-checked rows, the first-move metric on
hand-made outputs, and a tiny end-to-end generation run."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_chess import HAND_CHECKED, _hand_checked_csv, _synthetic_puzzles
from tests.tiny_lms import bpe_tokenizer, make_tiny_lm, metaspace_tokenizer
from weaklift.config import TaskConfig
from weaklift.config_files import load_config
from weaklift.generation_metrics import METRICS
from weaklift.pipeline import run_experiment
from weaklift.store import ArtifactStore
from weaklift.tasks import load_task, task_kind

# 000rZ after Nxe6: Black to move; Qxh2# solves it, Qxe6 takes the knight (legal, wrong).
POSITION = HAND_CHECKED[0][2]


def test_prompt_and_target_on_hand_checked_rows(tmp_path):
    pytest.importorskip("chess")
    cfg = TaskConfig(name="chess_move", path=str(_hand_checked_csv(tmp_path)))
    data = load_task(cfg)
    assert task_kind(cfg) == "generation"
    assert data.targets == ["Qxh2", "Rf8", "Nxg3", "Qa8"]  # the answers, +/# stripped
    assert data.contexts == [position for _, _, position, _, _ in HAND_CHECKED]
    assert data.texts[0] == (
        "Chess puzzle. Black to move.\n"
        f"FEN: {POSITION}\n"
        "White just played Nxe6.\n"
        "Best move for Black (SAN):"
    )
    # The same position text as the classification form's statement, minus the candidate move.
    statement = load_task(TaskConfig(name="chess", path=cfg.path)).texts[0]
    assert statement == "Chess puzzle. Black to move.\n" + statement.split("\n", 1)[1]
    assert data.texts[0].rsplit("\n", 1)[0] == statement.rsplit("\n", 1)[0]
    boarded = load_task(TaskConfig(name="chess_move", path=cfg.path, board=True))
    assert len(boarded.texts[0].splitlines()) == 4 + 9


@pytest.mark.parametrize(
    ("output", "correct", "legal"),
    [
        ("Qxh2", 1, 1),  # exact
        (" Qxh2#\n", 1, 1),  # the mate marker and whitespace do not matter
        ("Qxh2+ and mate follows", 1, 1),  # trailing text after the first token is ignored
        ("Qxe6", 0, 1),  # legal but wrong
        ("Qh1", 0, 0),  # a queen move that is not legal here
        ("Nf3", 0, 0),  # White's move: illegal for Black
        ("!!??", 0, 0),  # garbage
        ("", 0, 0),  # nothing generated
    ],
)
def test_metric_on_hand_made_outputs(output, correct, legal):
    pytest.importorskip("chess")
    stats = METRICS["chess_move"].stats([output], ["Qxh2"], [POSITION])
    assert stats.tolist() == [[correct, legal, 1]]


def test_metric_summary_and_resampling_from_counts():
    pytest.importorskip("chess")
    metric = METRICS["chess_move"]
    outputs = ["Qxh2", "Qxe6", "zz", "Qxh2 wins"]
    stats = metric.stats(outputs, ["Qxh2"] * 4, [POSITION] * 4)
    assert metric.summarize(stats) == {"move_accuracy": 0.5, "legal_rate": 0.75}
    assert metric.summarize(stats[np.array([1, 2])]) == {"move_accuracy": 0.0, "legal_rate": 0.5}
    with pytest.raises(ValueError, match="contexts"):
        metric.stats(outputs, ["Qxh2"] * 4)


def test_tiny_generation_run_on_chess_move(tmp_path):
    pytest.importorskip("chess")
    path = _synthetic_puzzles(tmp_path / "puzzles.csv", 24)
    data = load_task(TaskConfig(name="chess_move", path=str(path)))
    texts = [t for pair in zip(data.texts, data.targets, strict=True) for t in pair]
    weak = make_tiny_lm(tmp_path / "weak", bpe_tokenizer(texts, 300))
    strong = make_tiny_lm(tmp_path / "strong", metaspace_tokenizer(texts, 150))
    cfg = load_config(
        None,
        [
            "task.name=chess_move",
            f"task.path={path}",
            f"weak.model={weak}",
            "weak.mode=lora",
            f"strong.model={strong}",
            "strong.mode=lora",
            "methods=[sft]",
            f"output_dir={tmp_path / 'runs'}",
            "train.finetune.epochs=1",
            "train.finetune.batch_size=4",
            "train.finetune.micro_batch_size=2",
            "generation.max_new_tokens=4",
            "bootstrap_samples=20",
            "split.weak_train=8",
            "split.transfer=8",
            "split.val=2",
            "split.test=6",
        ],
    )
    results = run_experiment(cfg, ArtifactStore(tmp_path / "runs" / "artifacts"))
    assert results["primary"] == "move_accuracy"
    student = results["students"]["sft"]
    assert 0.0 <= student["move_accuracy"] <= 1.0 and 0.0 <= student["legal_rate"] <= 1.0
    lo, hi = student["move_accuracy_ci"]
    assert lo <= student["move_accuracy"] <= hi


# Back-rank mate with two rooks: Ra8# and Rb8# both mate; Ra7 is legal and does not.
TWO_MATES = "7k/6pp/8/8/8/8/8/RR4K1 w - - 0 1"


@pytest.mark.parametrize(
    ("output", "reference", "correct"),
    [
        ("Ra8", "Ra8", 1),  # the listed mate
        ("Rb8", "Ra8", 1),  # the other mate solves a mate-in-one too
        ("Rb8#", "Ra8", 1),
        ("Ra7", "Ra8", 0),  # legal, no mate
        ("Rb8", "Ra7", 0),  # the listed move is no mate: only it counts
    ],
)
def test_any_mate_solves_a_mate_in_one(output, reference, correct):
    pytest.importorskip("chess")
    stats = METRICS["chess_move"].stats([output], [reference], [TWO_MATES])
    assert stats.tolist() == [[correct, 1, 1]]
