"""SLU-F1 and the other generation metrics against hand-worked cases (official SLURP scorer rules)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from weaklift.generation_metrics import (
    METRICS,
    char_distance,
    final_number,
    metric_difference_ci,
    parse_slurp,
    pgr_ci_from_stats,
    serialise_slurp,
    span_distance_counts,
    word_distance,
)

SLURP = METRICS["slurp"]
GOLD = serialise_slurp("alarm", "set", [("date", "tomorrow"), ("place_name", "new york city")])


def test_serialisation_round_trips():
    assert GOLD == "alarm_set | date=tomorrow | place_name=new york city"
    assert parse_slurp(GOLD) == (
        "alarm_set",
        [("date", "tomorrow"), ("place_name", "new york city")],
    )
    assert parse_slurp("alarm_set | broken | time= noon ") == ("alarm_set", [("time", "noon")])


def test_distances_match_jiwer_and_textdistance_definitions():
    assert word_distance("new york city", "new york") == pytest.approx(1 / 3)  # 1 deletion / 3
    assert word_distance("a b", "a b c d") == pytest.approx(1.0)  # insertions: WER may reach 1+
    assert char_distance("new york city", "new york") == pytest.approx(5 / 13)  # " city" / 13
    assert char_distance("kitten", "sitting") == pytest.approx(3 / 7)


def test_slu_f1_hand_worked_utterance():
    """date exact (d=0), place_name partial, time spurious.
    word: TP 2, FP 1/3 + 1, FN 1/3;  char: TP 2, FP 5/13 + 1, FN 5/13.
    SLU-F1 = 2·TP / (2·TP + FP + FN) over the summed counts = 8 / (8 + 134/39) = 312/446."""
    predicted = "alarm_set | date=tomorrow | place_name=new york | time=noon"
    stats = SLURP.stats([predicted], [GOLD])
    summary = SLURP.summarize(stats)
    assert summary["slu_f1"] == pytest.approx(312 / 446)
    assert summary["word_f1"] == pytest.approx(4 / (4 + 4 / 3 + 1 / 3))
    assert summary["char_f1"] == pytest.approx(4 / (4 + 1 + 10 / 13))
    assert summary["span_f1"] == pytest.approx(2 / (2 + 2 + 1))  # exact: 1 TP, 2 FP, 1 FN
    assert summary["intent_accuracy"] == 1.0


def test_same_type_matches_the_closest_gold_filler():
    gold = [("person", "john"), ("person", "mary")]
    assert span_distance_counts(gold, [("person", "mary")], word_distance) == (1, 0, 1)
    tp, fp, fn = span_distance_counts(gold, [("person", "marie")], char_distance)
    assert (tp, fp, fn) == pytest.approx((1, 2 / 5, 1 + 2 / 5))  # marie~mary (2 edits / 5)


def test_corpus_counts_are_summed_before_f1_and_intent_is_scenario_action():
    references = [GOLD, "play_music | music_genre=jazz", "weather_query"]
    predictions = ["alarm_query | date=tomorrow", "play_music | music_genre=jazz", "weather_query"]
    summary = SLURP.summarize(SLURP.stats(predictions, references))
    # word and char alike: TP 2 (date, music_genre), FP 0, FN 1 (place_name) → each 4 / 5
    assert summary["slu_f1"] == pytest.approx(8 / 10)
    assert summary["intent_accuracy"] == pytest.approx(2 / 3)


def test_no_entities_anywhere_scores_zero_like_the_scorer():
    summary = SLURP.summarize(SLURP.stats(["weather_query"], ["weather_query"]))
    assert summary["slu_f1"] == 0.0 and summary["intent_accuracy"] == 1.0


def test_final_number_accuracy():
    assert final_number("so 3 + 4 = 7\n#### 1,234") == "1234"
    assert final_number("the answer is 18.") == "18"
    assert final_number("no digits") is None
    metric = METRICS["final_number"]
    stats = metric.stats(["#### 18", "it is 5", "x"], ["a\n#### 18", "b\n#### 6", "c\n#### 1"])
    assert metric.summarize(stats) == {"accuracy": pytest.approx(1 / 3)}


def test_pgr_ci_resamples_examples_jointly():
    metric = METRICS["exact_match"]
    weak = np.array([[0, 1]] * 10 + [[1, 1]] * 10, dtype=float)
    ceiling = np.array([[1, 1]] * 20, dtype=float)
    student = np.array([[0, 1]] * 5 + [[1, 1]] * 15, dtype=float)
    idx = np.random.default_rng(0).integers(0, 20, size=(200, 20))
    lo, hi = pgr_ci_from_stats(metric, weak, student, ceiling, idx)
    # weak 0.5, student 0.75, ceiling 1.0 → PGR 0.5; students better on the same rows
    assert lo <= 0.5 <= hi and lo >= 0.0 and hi <= 1.0
    assert not math.isnan(lo)


def test_paired_difference_ci_by_hand():
    exact = METRICS["exact_match"]
    refs = ["a", "b", "c", "d"]
    before = exact.stats(["a", "x", "x", "x"], refs)  # 1 of 4 right
    after = exact.stats(["a", "b", "x", "x"], refs)  # 2 of 4 right: example 1 fixed
    idx = np.array([[0, 1, 2, 3], [1, 1, 1, 1], [0, 2, 3, 3], [1, 0, 1, 0]])
    # per resample: after − before = 1/4, 1, 0, 1/2 → 2.5th/97.5th percentiles of those four
    lo, hi = metric_difference_ci(exact, after, before, idx)
    assert (lo, hi) == pytest.approx(tuple(np.percentile([0.25, 1.0, 0.0, 0.5], [2.5, 97.5])))
    assert metric_difference_ci(exact, before, before, idx) == (0.0, 0.0)  # a model vs itself
