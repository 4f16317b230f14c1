"""Chess puzzles: puzzle positions and answers on hand-checked rows, distractors, easy-to-hard
splits, accuracy by rating bucket, ladder and ensembles end to end, the missing-python-chess error."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from weaklift.cli import main
from weaklift.config import SplitConfig, TaskConfig
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.metrics import accuracy_by_bucket
from weaklift.report import results_table
from weaklift.splits import BLOCKS, SPLIT_NAMES, make_splits
from weaklift.tasks import load_task

DATA = Path(os.environ.get("WEAKLIFT_DATA", Path(__file__).parents[2] / "shared" / "data"))
HEADER = ["PuzzleId", "FEN", "Moves", "Rating", "Themes"]
# The first rows of the Lichess sample (CC0). Checked by reading the FENs:
# 000rZ: White's knight takes the bishop on e6 (Nxe6); Black's queen takes h2, guarded by the g4
#        knight: mate (Qxh2#).
# 001KR: Black's king takes the queen on g8 (Kxg8); Rf8 is mate, the rook guarded by the e6
#        knight, g7 covered by it too (Rf8#).
# 002Q2: White's bishop takes the rook on h6 (Bxh6); the f5 knight takes the g3 pawn: mate, g1
#        covered by the d4 bishop, g2/h2 by the e2 rook (Nxg3#).
# 002X3: Black's rook takes the a3 rook (Rxa3); the g2 queen runs the long diagonal to a8 with
#        check (Qa8+).
HAND_CHECKED = [
    (
        ["000rZ", "2kr1b1r/p1p2pp1/2pqb3/7p/3N2n1/2NPB3/PPP2PPP/R2Q1RK1 w - - 2 13", "d4e6 d6h2"],
        633,
        "2kr1b1r/p1p2pp1/2pqN3/7p/6n1/2NPB3/PPP2PPP/R2Q1RK1 b - - 0 13",
        "Nxe6",
        "Qxh2#",
    ),
    (
        ["001KR", "6Qk/p1p3pp/4N3/1p6/2q1r1n1/2B5/PP4PP/3R1R1K b - - 0 28", "h8g8 f1f8"],
        588,
        "6k1/p1p3pp/4N3/1p6/2q1r1n1/2B5/PP4PP/3R1R1K w - - 0 29",
        "Kxg8",
        "Rf8#",
    ),
    (
        ["002Q2", "7k/p4R1p/3p3r/2pN1n2/2PbBBb1/3P2P1/P3r3/5R1K w - - 1 28", "f4h6 f5g3"],
        911,
        "7k/p4R1p/3p3B/2pN1n2/2PbB1b1/3P2P1/P3r3/5R1K b - - 0 28",
        "Bxh6",
        "Nxg3#",
    ),
    (
        ["002X3", "6k1/2q2p1p/4pPp1/4P3/p1pP1P2/RrP5/6QP/4B1K1 b - - 0 33", "b3a3 g2a8 c7b8 a8b8"],
        970,
        "6k1/2q2p1p/4pPp1/4P3/p1pP1P2/r1P5/6QP/4B1K1 w - - 0 34",
        "Rxa3",
        "Qa8+",
    ),
]


def _write_csv(path: Path, rows: list[list]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _hand_checked_csv(tmp_path: Path) -> Path:
    return _write_csv(
        tmp_path / "puzzles.csv", [[*row, rating, "mate"] for row, rating, *_ in HAND_CHECKED]
    )


def _synthetic_puzzles(path: Path, n: int) -> Path:
    """Legal positions from seeded random games, with a random set-up move and 'answer'.

    Only the format is real, not the chess: enough for the pipeline, never for accuracy."""
    chess = pytest.importorskip("chess")
    rng = np.random.default_rng(0)
    rows = []
    while len(rows) < n:
        board = chess.Board()
        for _ in range(int(rng.integers(4, 20))):
            moves = sorted(board.legal_moves, key=lambda m: m.uci())
            board.push(moves[int(rng.integers(len(moves)))])
        if board.is_game_over():
            continue
        fen = board.fen()
        setup = sorted(board.legal_moves, key=lambda m: m.uci())[0]
        board.push(setup)
        replies = sorted(board.legal_moves, key=lambda m: m.uci())
        if len(replies) < 2:
            continue
        answer = replies[int(rng.integers(len(replies)))]
        rows.append([f"p{len(rows)}", fen, f"{setup.uci()} {answer.uci()}", 600 + 20 * len(rows)])
    return _write_csv(path, [[*r, "synthetic"] for r in rows])


# ---------------------------------------------------------------- puzzles and statements


def test_puzzle_position_after_the_setup_move_and_the_answer_on_hand_checked_rows():
    pytest.importorskip("chess")
    from weaklift.tasks.chess import parse_puzzle

    for (puzzle_id, fen, moves), rating, position, setup_san, answer_san in HAND_CHECKED:
        puzzle = parse_puzzle({"PuzzleId": puzzle_id, "FEN": fen, "Moves": moves, "Rating": rating})
        assert puzzle.board.fen() == position
        assert puzzle.setup_san == setup_san
        assert puzzle.board.san(puzzle.answer) == answer_san
        assert puzzle.rating == rating


def test_two_statements_per_puzzle_with_group_rating_and_readable_text(tmp_path):
    pytest.importorskip("chess")
    data = load_task(TaskConfig(name="chess", path=str(_hand_checked_csv(tmp_path))))
    assert data.labels.tolist() == [1, 0] * 4
    assert data.groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert data.columns["rating"].tolist() == [633, 633, 588, 588, 911, 911, 970, 970]
    assert data.difficulty == "rating" and data.label_names == ["distractor", "solution"]
    assert data.texts[0] == (
        "Chess puzzle. Black to move.\n"
        "FEN: 2kr1b1r/p1p2pp1/2pqN3/7p/6n1/2NPB3/PPP2PPP/R2Q1RK1 b - - 0 13\n"
        "White just played Nxe6.\n"
        "Best move for Black: Qxh2"  # no '#': the marker would give mates away
    )
    assert data.texts[1].rsplit(": ", 1)[0] == data.texts[0].rsplit(": ", 1)[0]
    assert data.texts[1] != data.texts[0]
    assert data.texts[6].endswith("Best move for White: Qa8")


def test_board_option_adds_the_8x8_grid(tmp_path):
    pytest.importorskip("chess")
    path = str(_hand_checked_csv(tmp_path))
    data = load_task(TaskConfig(name="chess", path=path, board=True))
    lines = data.texts[0].splitlines()
    grid = lines[3:12]
    assert grid[0] == "8 . . k r . b . r"  # c8 king, d8 rook, f8 bishop, h8 rook
    assert grid[5] == "3 . . N P B . . ."
    assert grid[7] == "1 R . . Q . R K ."
    assert grid[8] == "  a b c d e f g h"
    with pytest.raises(WeakliftError, match="task.board is only used by task `chess`"):
        load_task(TaskConfig(name="facts", board=True))


def test_distractors_are_legal_deterministic_never_the_answer_and_never_mate(tmp_path):
    pytest.importorskip("chess")
    from weaklift.tasks.chess import draw_distractor, parse_puzzle

    path = DATA / "chess" / "lichess_db_puzzle.csv"
    if path.is_file():
        rows = list(csv.DictReader(path.open()))[:300]
    else:
        rows = [dict(zip(HEADER, [*r, g, ""], strict=False)) for r, g, *_ in HAND_CHECKED]
    changed = matched = 0
    for row in rows:
        puzzle = parse_puzzle(row)
        distractor = draw_distractor(puzzle, seed=0)
        assert distractor in puzzle.board.legal_moves and distractor != puzzle.answer
        board = puzzle.board.copy()
        board.push(distractor)
        assert not board.is_checkmate()
        assert draw_distractor(parse_puzzle(row), seed=0) == distractor
        b, answer = puzzle.board, puzzle.answer
        look_alike = [  # same piece kind, capturing exactly when the answer does, not mating
            m
            for m in b.legal_moves
            if m != answer
            and b.is_capture(m) == b.is_capture(answer)
            and b.piece_type_at(m.from_square) == b.piece_type_at(answer.from_square)
            and not _gives_mate(b, m)
        ]
        if look_alike:
            assert distractor in look_alike
            matched += 1
        changed += draw_distractor(puzzle, seed=1) != distractor
    assert changed > len(rows) // 2  # the seed picks the distractor
    assert matched > len(rows) // 2


def _gives_mate(board, move) -> bool:
    after = board.copy()
    after.push(move)
    return after.is_checkmate()


def test_distractor_of_a_puzzle_does_not_depend_on_its_neighbours(tmp_path):
    pytest.importorskip("chess")
    both = load_task(TaskConfig(name="chess", path=str(_hand_checked_csv(tmp_path)), seed=3))
    rows = [[*row, rating, "mate"] for row, rating, *_ in HAND_CHECKED[2:]]
    alone = load_task(
        TaskConfig(name="chess", path=str(_write_csv(tmp_path / "b.csv", rows)), seed=3)
    )
    assert alone.texts == both.texts[4:]


def test_max_examples_keeps_whole_puzzles(tmp_path):
    pytest.importorskip("chess")
    cfg = TaskConfig(name="chess", path=str(_hand_checked_csv(tmp_path)), max_examples=5)
    data = load_task(cfg)
    assert len(data.texts) == 4 and data.labels.tolist() == [1, 0, 1, 0]
    assert data.groups.tolist() == [0, 0, 1, 1]


def test_illegal_move_names_the_row(tmp_path):
    pytest.importorskip("chess")
    rows = [[*row, rating, "x"] for row, rating, *_ in HAND_CHECKED]
    rows[2][2] = "f4h6 a1a8"
    path = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(WeakliftError, match="row 2 of .* is malformed .*answer a1a8 is illegal"):
        load_task(TaskConfig(name="chess", path=str(path)))


def test_missing_python_chess_is_one_clear_line_with_the_install_command(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "chess", None)  # `import chess` now raises ImportError
    path = _write_csv(tmp_path / "p.csv", [[*r, g, ""] for r, g, *_ in HAND_CHECKED])
    with pytest.raises(WeakliftError, match=r"pip install 'weaklift\[chess\]'"):
        load_task(TaskConfig(name="chess", path=str(path)))
    code = main(["run", "task.name=chess", f"task.path={path}", f"output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "python-chess" in err and "pip install 'weaklift[chess]'" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- easy-to-hard splits


def _rated(n_groups: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Groups of two examples (a puzzle's two statements) and their shared rating."""
    ratings = np.random.default_rng(seed).integers(400, 2800, size=n_groups).astype(float)
    return np.repeat(np.arange(n_groups), 2), {"rating": np.repeat(ratings, 2)}


def test_rating_split_puts_every_weak_train_rating_below_every_hard_test_rating():
    groups, columns = _rated(200)
    labels = np.tile([1, 0], 200)
    cfg = SplitConfig(weak_train=100, transfer=100, val=40, test=100, by="rating", hard_test=True)
    splits = make_splits(labels, cfg, 0, groups, columns)
    rating = columns["rating"]
    weak_side = np.concatenate([splits.weak_train, splits.weak_holdout])
    assert rating[weak_side].max() < rating[splits.test].min()
    middle = np.concatenate([splits.transfer, splits.val])
    assert rating[weak_side].max() <= rating[middle].min()
    assert rating[middle].max() <= rating[splits.test].min()
    assert len(weak_side) == cfg.weak_train and len(splits.weak_holdout) == 20
    for name in SPLIT_NAMES:  # exact sizes, whole puzzles, hence balanced
        idx = splits[name]
        assert name not in BLOCKS[1:] or len(idx) == getattr(cfg, name)
        assert labels[idx].mean() == 0.5
        assert set(np.bincount(groups[idx])[np.unique(groups[idx])]) == {2}
    union = np.concatenate([splits[n] for n in SPLIT_NAMES])
    assert len(np.unique(union)) == len(union)
    again = make_splits(labels, cfg, 0, groups, columns)
    assert all(np.array_equal(splits[n], again[n]) for n in SPLIT_NAMES)


def test_rating_split_without_hard_test_draws_the_rest_at_random():
    groups, columns = _rated(200)
    labels = np.tile([1, 0], 200)
    cfg = SplitConfig(weak_train=100, transfer=100, val=40, test=100, by="rating")
    splits = make_splits(labels, cfg, 0, groups, columns)
    rating = columns["rating"]
    weak_side = np.concatenate([splits.weak_train, splits.weak_holdout])
    assert np.array_equal(np.sort(rating[weak_side]), np.sort(rating)[:100])
    others = np.concatenate([splits.transfer, splits.val, splits.test])
    assert rating[weak_side].max() <= rating[others].min()
    # test is a random draw from the rest, not its hardest part
    rest = np.setdiff1d(np.arange(400), weak_side)
    assert rating[splits.test].min() < np.sort(rating[rest])[-100]
    other_seed = make_splits(labels, cfg, 1, groups, columns)
    assert not np.array_equal(splits.test, other_seed.test)


def test_any_numeric_column_and_plain_examples_work():
    values = np.arange(100, dtype=float)[::-1]  # example 99 is the "easiest"
    cfg = SplitConfig(weak_train=10, transfer=10, val=10, test=10, by="length", hard_test=True)
    splits = make_splits(np.zeros(100, int), cfg, 0, columns={"length": values})
    weak_side = set(splits.weak_train) | set(splits.weak_holdout)
    assert weak_side == set(range(90, 100)) and set(splits.test) == set(range(10))


def test_bad_difficulty_splits_are_clear_errors():
    (groups, columns), labels = _rated(20), np.tile([1, 0], 20)
    with pytest.raises(WeakliftError, match="split.by='elo' is not a numeric column .*rating"):
        make_splits(
            labels,
            SplitConfig(weak_train=4, transfer=4, val=2, test=4, by="elo"),
            0,
            groups,
            columns,
        )
    with pytest.raises(WeakliftError, match="split.weak_train=5 would cut a group"):
        make_splits(
            labels,
            SplitConfig(weak_train=5, transfer=4, val=2, test=4, by="rating"),
            0,
            groups,
            columns,
        )
    with pytest.raises(WeakliftError, match="split sizes need 50 examples but the task has 40"):
        make_splits(
            labels,
            SplitConfig(weak_train=20, transfer=20, val=2, test=8, by="rating"),
            0,
            groups,
            columns,
        )
    with pytest.raises(WeakliftError, match="split.hard_test needs split.by"):
        load_config(None, ["split.hard_test=true"])
    with pytest.raises(WeakliftError, match="split.balance cannot be combined with split.by"):
        load_config(None, ["split.by=rating", "split.balance=true"])


def test_rating_split_on_the_lichess_sample():
    pytest.importorskip("chess")
    path = DATA / "chess" / "lichess_db_puzzle.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present (set WEAKLIFT_DATA)")
    data = load_task(TaskConfig(name="chess", path=str(path)))
    assert len(data.texts) == 2998 and data.labels.mean() == 0.5
    cfg = SplitConfig(
        weak_train=1000, transfer=1000, val=200, test=600, by="rating", hard_test=True
    )
    splits = make_splits(data.labels, cfg, 0, data.groups, data.columns)
    rating = data.columns["rating"]
    weak_side = np.concatenate([splits.weak_train, splits.weak_holdout])
    assert rating[weak_side].max() < rating[splits.test].min()


# ---------------------------------------------------------------- accuracy by bucket


def test_accuracy_by_bucket_by_hand():
    values = np.array([1, 2, 3, 4, 5, 6, 7, 8], dtype=float)
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    always_one = np.tile([0.2, 0.8], (8, 1))
    rows = accuracy_by_bucket(values, labels, {"m": always_one}, buckets=2)
    assert [(r["low"], r["high"], r["n"]) for r in rows] == [(1, 4.5, 4), (4.5, 8, 4)]
    assert [r["accuracy"]["m"] for r in rows] == [1.0, 0.0]
    flat = accuracy_by_bucket(np.ones(4), labels[:4], {"m": always_one[:4]}, buckets=4)
    assert len(flat) == 1 and flat[0]["n"] == 4 and flat[0]["accuracy"]["m"] == 1.0


# ---------------------------------------------------------------- end to end (tiny models)


@pytest.fixture(scope="module")
def chess_workdir(tmp_path_factory):
    pytest.importorskip("chess")
    from tests.tiny_models import make_tiny_model

    root = tmp_path_factory.mktemp("chess")
    data = _synthetic_puzzles(root / "puzzles.csv", 40)
    texts = load_task(TaskConfig(name="chess", path=str(data))).texts
    weak = make_tiny_model(root / "weak", arch="bert", texts=texts)
    mid = make_tiny_model(root / "mid", arch="llama", texts=texts[:20])
    strong = make_tiny_model(root / "strong", arch="llama", texts=texts)
    return {"data": str(data), "weak": str(weak), "mid": str(mid), "strong": str(strong)}


def _chess_overrides(w, out, *extra):
    return [
        "task.name=chess",
        f"task.path={w['data']}",
        f"output_dir={out}",
        "train.probe.epochs=3",
        "bootstrap_samples=20",
        "split.weak_train=20",
        "split.transfer=20",
        "split.val=10",
        "split.test=20",
        "split.by=rating",
        "split.hard_test=true",
        *extra,
    ]


def test_easy_to_hard_run_reports_accuracy_by_rating_bucket(chess_workdir, tmp_path, capsys):
    w = chess_workdir
    args = _chess_overrides(w, tmp_path, f"weak.model={w['weak']}", f"strong.model={w['strong']}")
    assert main(["run", *args, "methods=[xent,logconf]"]) == 0
    printed = capsys.readouterr().out
    assert "Accuracy by rating (quantile buckets of test; n = examples × seeds):" in printed
    from weaklift.pipeline import run_experiment

    results = run_experiment(load_config(None, [*args, "methods=[xent,logconf]"])).data
    buckets = results["by_bucket"]
    assert buckets["column"] == "rating"
    pooled = 20 * len(results["seeds"])  # every seed's test examples
    assert sum(b["n"] for b in buckets["buckets"]) == pooled
    assert list(buckets["buckets"][0]["accuracy"]) == ["weak", "xent", "logconf", "ceiling"]
    # the per-bucket accuracies add up to the overall test accuracy (the mean over seeds)
    for name, overall in [("weak", results["weak"]), ("ceiling", results["ceiling"])]:
        total = sum(b["n"] * b["accuracy"][name] for b in buckets["buckets"]) / pooled
        assert total == pytest.approx(overall["accuracy"])
    assert min(b["low"] for b in buckets["buckets"]) >= 600 + 20 * 30  # hard test: top 10 puzzles
    assert "rating bucket" in results_table(results)


def test_ladder_and_ensemble_run_on_chess_unchanged(chess_workdir, tmp_path):
    from weaklift.pipeline import run_experiment

    w = chess_workdir
    ladder = _chess_overrides(w, tmp_path, f"ladder=[{w['weak']}, {w['mid']}, {w['strong']}]")
    results = run_experiment(load_config(None, [*ladder, "methods=[xent]"])).data
    assert len(results["ladder"]["xent"]["rungs"]) == 2
    ensemble = _chess_overrides(
        w,
        tmp_path,
        f"weak=[{{model: tfidf}}, {{model: {w['weak']}}}]",
        f"strong.model={w['strong']}",
    )
    results = run_experiment(load_config(None, [*ensemble, "methods=[xent,multi_naive]"])).data
    assert len(results["weak_members"]) == 2 and set(results["students"]) == {
        "xent",
        "multi_naive",
    }
    assert list(results["by_bucket"]["buckets"][0]["accuracy"]) == [
        "weak",
        "xent",
        "multi_naive",
        "ceiling",
    ]
