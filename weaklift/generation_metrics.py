"""Task metrics for generation: SLURP's intent accuracy and SLU-F1, GSM8K final-number accuracy,
exact match, chess first-move accuracy with the legal-move rate. Each metric turns (prediction, reference) into a row of ADDITIVE per-example counts, so
the corpus score of any resample is ``summarize(stats[idx].sum(0))`` and bootstrap CIs are cheap.

SLU-F1 follows the official SLURP scorer (pswietojanski/slurp, scripts/evaluation/metrics): a
predicted entity whose type matches a gold entity still left is a true positive, and the normalised
distance d between the two fillers (the closest remaining gold filler of that type) is added to both
false positives and false negatives; a predicted type with no gold left is a false positive, every
unmatched gold entity a false negative. Word-level d is the word error rate (word edit distance /
gold words), char-level d the Levenshtein distance / the longer string's length. SLU-F1 is the
micro F1 of the word-level and char-level counts summed. Intent accuracy compares scenario_action.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Entity = tuple[str, str]  # (type, filler)


# --- edit distances -------------------------------------------------------------------------------


def edit_distance(a: list[str] | str, b: list[str] | str) -> int:
    """Levenshtein distance (unit costs) between two sequences of words or characters."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def word_distance(gold: str, predicted: str) -> float:
    """Word error rate of ``predicted`` against ``gold`` (as jiwer.wer): may exceed 1."""
    gold_words, predicted_words = gold.split(), predicted.split()
    if not gold_words:
        return float(len(predicted_words) > 0)
    return edit_distance(gold_words, predicted_words) / len(gold_words)


def char_distance(gold: str, predicted: str) -> float:
    """Levenshtein distance / the longer length (textdistance's normalized_distance), in [0, 1]."""
    longest = max(len(gold), len(predicted))
    return edit_distance(gold, predicted) / longest if longest else 0.0


# --- F1 from counts --------------------------------------------------------------------------------


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """The scorer's compute_metrics: precision/recall 0 when undefined, F1 0 when both are 0."""
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def span_distance_counts(
    gold: list[Entity], predicted: list[Entity], distance: Callable[[str, str], float]
) -> tuple[float, float, float]:
    """(TP, FP, FN) of the distance-smoothed span F1 for one utterance (SpanDistanceFMeasure)."""
    remaining = list(gold)
    tp = fp = fn = 0.0
    for kind, filler in predicted:
        candidates = [(distance(g, filler), i) for i, (t, g) in enumerate(remaining) if t == kind]
        if not candidates:
            fp += 1
            continue
        lowest, index = min(candidates)  # first index among equal distances, as the scorer
        tp, fp, fn = tp + 1, fp + lowest, fn + lowest
        remaining.pop(index)
    return tp, fp, fn + len(remaining)


def span_exact_counts(gold: list[Entity], predicted: list[Entity]) -> tuple[float, float, float]:
    """(TP, FP, FN) of exact span F1 (type and filler must both match; SpanFMeasure)."""
    remaining = list(gold)
    tp = fp = 0.0
    for entity in predicted:
        if entity in remaining:
            tp += 1
            remaining.remove(entity)
        else:
            fp += 1
    return tp, fp, float(len(remaining))


# --- SLURP serialisation ---------------------------------------------------------------------------

SLOT_SEPARATOR = " | "


def serialise_slurp(scenario: str, action: str, entities: list[Entity]) -> str:
    """``scenario_action | type=filler | ...``: compact, deterministic, and parsed back exactly."""
    parts = [f"{scenario}_{action}", *(f"{kind}={filler}" for kind, filler in entities)]
    return SLOT_SEPARATOR.join(parts)


def parse_slurp(text: str) -> tuple[str, list[Entity]]:
    """(intent, entities) from a serialisation; malformed slots are dropped, like a bad prediction."""
    parts = [p.strip() for p in text.strip().split("|")]
    intent = parts[0] if parts else ""
    entities = []
    for part in parts[1:]:
        kind, sep, filler = part.partition("=")
        if sep and kind.strip():
            entities.append((kind.strip(), " ".join(filler.split())))
    return intent, entities


# --- metrics ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskMetric:
    """Per-example additive counts and the corpus summary computed from their sum."""

    name: str
    primary: str  # the summary key PGR is computed on
    columns: tuple[str, ...]
    example_stats: Callable[..., list[float]]  # (prediction, reference[, context])
    summarize_sums: Callable[[np.ndarray], dict[str, float]]
    contextual: bool = False  # example_stats also takes the example's context (GenerationData)

    def stats(
        self, predictions: list[str], references: list[str], contexts: list[str] | None = None
    ) -> np.ndarray:
        """(N, S) counts, one row per example; ``contexts`` is required by contextual metrics."""
        if self.contextual:
            if contexts is None:
                raise ValueError(f"metric {self.name!r} needs the examples' contexts")
            triples = zip(predictions, references, contexts, strict=True)
            rows = [self.example_stats(p, r, c) for p, r, c in triples]
        else:
            rows = [self.example_stats(p, r) for p, r in zip(predictions, references, strict=True)]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(self.columns))

    def summarize(self, stats: np.ndarray) -> dict[str, float]:
        return self.summarize_sums(np.asarray(stats, dtype=np.float64).sum(axis=0))


def _slurp_stats(predicted: str, reference: str) -> list[float]:
    gold_intent, gold = parse_slurp(reference)
    intent, entities = parse_slurp(predicted)
    return [
        float(intent == gold_intent),
        *span_distance_counts(gold, entities, word_distance),
        *span_distance_counts(gold, entities, char_distance),
        *span_exact_counts(gold, entities),
    ]


def _slurp_summary(s: np.ndarray) -> dict[str, float]:
    word, char, span = s[1:4], s[4:7], s[7:10]
    return {
        "slu_f1": f1_from_counts(*(word + char)),
        "intent_accuracy": float(s[0] / s[10]) if s[10] else float("nan"),
        "word_f1": f1_from_counts(*word),
        "char_f1": f1_from_counts(*char),
        "span_f1": f1_from_counts(*span),
    }


def _with_count(stats: Callable[[str, str], list[float]]) -> Callable[[str, str], list[float]]:
    """Append a 1 per example, so the summary knows how many examples a (resampled) sum covers."""
    return lambda predicted, reference: [*stats(predicted, reference), 1.0]


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_number(text: str) -> str | None:
    """The answer of a GSM8K solution: what follows ``####``, else the last number; commas removed."""
    tail = text.split("####")[-1] if "####" in text else text
    numbers = _NUMBER.findall(tail)
    if not numbers:
        return None
    value = numbers[-1].replace(",", "").rstrip(".")
    return value[:-2] if value.endswith(".0") else value


def _number_stats(predicted: str, reference: str) -> list[float]:
    answer = final_number(predicted)
    return [float(answer is not None and answer == final_number(reference)), 1.0]


def _exact_stats(predicted: str, reference: str) -> list[float]:
    return [float(" ".join(predicted.split()) == " ".join(reference.split())), 1.0]


def first_move(text: str, fen: str) -> str | None:
    """The generated text's first token read as SAN on the position ``fen``, as ``move_text``
    writes it (no +/#); None when it is not a legal move there."""
    import chess  # python-chess: an optional extra, only needed by the chess metric

    token = text.split()[0] if text.split() else ""
    board = chess.Board(fen)
    try:
        move = board.parse_san(token)
    except ValueError:  # illegal, ambiguous or unparseable SAN
        return None
    return board.san(move).rstrip("+#")


def _chess_move_stats(predicted: str, reference: str, fen: str) -> list[float]:
    """Correct when the move is the listed one, or, on a mate-in-one (the listed move mates:
    Lichess's ``mateIn1`` theme means exactly that), any other move that mates, since Lichess
    accepts every mate as the solution."""
    move = first_move(predicted, fen)
    correct = move is not None and (
        move == reference.strip() or (_mates(fen, move) and _mates(fen, reference.strip()))
    )
    return [float(correct), float(move is not None), 1.0]


def _mates(fen: str, san: str) -> bool:
    """Whether the legal move ``san`` (no +/#) checkmates on ``fen``."""
    import chess

    board = chess.Board(fen)
    try:
        board.push(board.parse_san(san))
    except ValueError:
        return False
    return board.is_checkmate()


def _chess_move_summary(s: np.ndarray) -> dict[str, float]:
    if not s[2]:
        return {"move_accuracy": float("nan"), "legal_rate": float("nan")}
    return {"move_accuracy": float(s[0] / s[2]), "legal_rate": float(s[1] / s[2])}


def _accuracy_summary(key: str) -> Callable[[np.ndarray], dict[str, float]]:
    return lambda s: {key: float(s[0] / s[1]) if s[1] else float("nan")}


METRICS: dict[str, TaskMetric] = {
    "slurp": TaskMetric(
        "slurp",
        "slu_f1",
        (
            "intent_correct",
            "word_tp",
            "word_fp",
            "word_fn",
            "char_tp",
            "char_fp",
            "char_fn",
            "span_tp",
            "span_fp",
            "span_fn",
            "examples",
        ),
        _with_count(_slurp_stats),
        _slurp_summary,
    ),  # fmt: skip
    "final_number": TaskMetric(
        "final_number",
        "accuracy",
        ("correct", "examples"),
        _number_stats,
        _accuracy_summary("accuracy"),
    ),
    "chess_move": TaskMetric(
        "chess_move",
        "move_accuracy",
        ("correct", "legal", "examples"),
        _chess_move_stats,
        _chess_move_summary,
        contextual=True,
    ),
    "exact_match": TaskMetric(
        "exact_match",
        "exact_match",
        ("correct", "examples"),
        _exact_stats,
        _accuracy_summary("exact_match"),
    ),
}


def bootstrap_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """(S, n) resampled example indices; shared by every model so resamples are paired."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def metric_ci(
    metric: TaskMetric, stats: np.ndarray, idx: np.ndarray, key: str, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of one summary value over the resamples ``idx``."""
    values = np.array([metric.summarize(stats[rows])[key] for rows in idx])
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def metric_difference_ci(
    metric: TaskMetric,
    stats: np.ndarray,
    baseline: np.ndarray,
    idx: np.ndarray,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of (model − baseline) on the primary metric, both scored on the same
    resampled examples (a paired bootstrap: is the change larger than test-set noise?)."""
    key = metric.primary
    values = np.array(
        [metric.summarize(stats[rows])[key] - metric.summarize(baseline[rows])[key] for rows in idx]
    )
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def pgr_ci_from_stats(
    metric: TaskMetric,
    weak: np.ndarray,
    student: np.ndarray,
    ceiling: np.ndarray,
    idx: np.ndarray,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of PGR on the primary metric, resampling examples jointly for all three
    models; resamples with a zero gap are dropped ((nan, nan) if none remain)."""
    key = metric.primary
    values = []
    for rows in idx:
        w = metric.summarize(weak[rows])[key]
        gap = metric.summarize(ceiling[rows])[key] - w
        if gap != 0:
            values.append((metric.summarize(student[rows])[key] - w) / gap)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)
