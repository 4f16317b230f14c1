"""Chess puzzles (Lichess open puzzle database), Burns et al. 2023's second domain.

Each Lichess row holds the position *before* the opponent's move (``FEN``) and the moves in UCI
(``Moves``): ``Moves[0]`` is the opponent's move that sets the puzzle up, ``Moves[1]`` the first
move of the solution. Every puzzle yields two statements, "position + candidate move", one with the
solution (label 1) and one with a legal distractor (label 0), so the task is exactly balanced; both
share the puzzle's ``group`` so a split never separates them, and its ``rating`` for easy-to-hard
splits. python-chess (GPL-3.0) is an optional extra: ``pip install 'weaklift[chess]'``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.tasks.base import ClassificationData
from weaklift.tasks.builtin import reject_file_options
from weaklift.tasks.generation import GenerationData
from weaklift.tasks.loaders import Row, read_path

if TYPE_CHECKING:
    import chess

COLUMNS = ("PuzzleId", "FEN", "Moves", "Rating")
INSTALL = "pip install 'weaklift[chess]' (or: pip install chess==1.11.2)"
DATA_URL = "https://database.lichess.org/#puzzles"


def require_python_chess() -> Any:
    """The ``chess`` module, or one clear line saying how to install it."""
    try:
        import chess
    except ImportError as err:
        raise WeakliftError(
            "task `chess` needs python-chess, which is not installed", INSTALL
        ) from err
    return chess


@dataclass(frozen=True)
class Puzzle:
    """One puzzle after the opponent's set-up move: the position to solve and its answer."""

    puzzle_id: str
    board: chess.Board  # the puzzle position (after Moves[0]); the solver is to move
    setup_san: str  # the opponent's move Moves[0], in SAN
    answer: chess.Move  # Moves[1]
    rating: int


def parse_puzzle(row: Row) -> Puzzle:
    """Apply ``Moves[0]`` to ``FEN``; ``Moves[1]`` is the answer. Illegal moves raise ValueError."""
    chess = require_python_chess()
    board = chess.Board(str(row["FEN"]))
    moves = str(row["Moves"]).split()
    if len(moves) < 2:
        raise ValueError(f"Moves {row['Moves']!r} needs the set-up move and the answer")
    setup = chess.Move.from_uci(moves[0])
    if not board.is_legal(setup):
        raise ValueError(f"set-up move {moves[0]} is illegal in {row['FEN']}")
    setup_san = board.san(setup)
    board.push(setup)
    answer = chess.Move.from_uci(moves[1])
    if not board.is_legal(answer):
        raise ValueError(f"answer {moves[1]} is illegal after {moves[0]}")
    return Puzzle(str(row["PuzzleId"]), board, setup_san, answer, int(row["Rating"]))


def draw_distractor(puzzle: Puzzle, seed: int) -> chess.Move | None:
    """A legal move other than the answer that looks like it, drawn by a coin seeded with
    (seed, puzzle id).

    A uniformly random legal move is rarely a capture while a third of solutions are, so the move
    alone would give the label away (a character n-gram classifier on the move reached 0.70). The
    distractor therefore moves the same kind of piece and captures exactly when the answer does,
    falling back to matching the capture only, then to any legal move. Moves that also mate are
    excluded (Lichess accepts any mate in one), so a distractor is never a second solution.
    Seeding per puzzle keeps a puzzle's distractor fixed whatever rows surround it. None when the
    answer is the only candidate.
    """
    board = puzzle.board
    legal = sorted(
        (m for m in board.legal_moves if m != puzzle.answer and not _mates(board, m)),
        key=lambda m: m.uci(),
    )
    capture = board.is_capture(puzzle.answer)
    piece = board.piece_type_at(puzzle.answer.from_square)
    same_capture = [m for m in legal if board.is_capture(m) == capture]
    same_kind = [m for m in same_capture if board.piece_type_at(m.from_square) == piece]
    candidates = same_kind or same_capture or legal
    if not candidates:
        return None
    digest = hashlib.sha256(f"{seed}:{puzzle.puzzle_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return candidates[int(rng.integers(len(candidates)))]


def _mates(board: chess.Board, move: chess.Move) -> bool:
    board.push(move)
    try:
        return board.is_checkmate()
    finally:
        board.pop()


def board_grid(board: chess.Board) -> str:
    """The board as 8 rows of characters, rank 8 first, with coordinates (white upper case)."""
    rows = str(board).splitlines()  # "r n b q k b n r", rank 8 first
    ranked = [f"{8 - i} {row}" for i, row in enumerate(rows)]
    return "\n".join([*ranked, "  a b c d e f g h"])


def move_text(board: chess.Board, move: chess.Move) -> str:
    """SAN without the check/mate marker: '#' would hand the answer of a mate-in-one to any
    bag-of-characters model, and the marker is the engine's verdict, not the reader's."""
    return board.san(move).rstrip("+#")


def side_to_move(puzzle: Puzzle) -> str:
    return "White" if puzzle.board.turn else "Black"


def format_position(puzzle: Puzzle, with_board: bool) -> str:
    """The position part both forms share: side to move, FEN, the opponent's last move, grid."""
    side = side_to_move(puzzle)
    other = "Black" if puzzle.board.turn else "White"
    lines = [
        f"Chess puzzle. {side} to move.",
        f"FEN: {puzzle.board.fen()}",
        f"{other} just played {puzzle.setup_san.rstrip('+#')}.",
    ]
    if with_board:
        lines.append(board_grid(puzzle.board))
    return "\n".join(lines)


def format_statement(puzzle: Puzzle, move: chess.Move, with_board: bool) -> str:
    """The text a classifier reads: the position, then a candidate move."""
    position = format_position(puzzle, with_board)
    return f"{position}\nBest move for {side_to_move(puzzle)}: {move_text(puzzle.board, move)}"


def format_move_prompt(puzzle: Puzzle, with_board: bool) -> str:
    """The generation form's prompt: the same position text, asking for the move in SAN."""
    position = format_position(puzzle, with_board)
    return f"{position}\nBest move for {side_to_move(puzzle)} (SAN):"


def _read_rows(cfg: TaskConfig, task: str) -> list[Row]:
    require_python_chess()
    if cfg.path is None:
        raise WeakliftError(
            f"task `{task}` needs task.path",
            f"set task.path=<the Lichess puzzle CSV, e.g. ../shared/data/chess> (from {DATA_URL})",
        )
    reject_file_options(cfg)
    return read_path(cfg.path, COLUMNS)


def _parse_rows(rows: list[Row], source: str, task: str) -> list[Puzzle]:
    puzzles = []
    for i, row in enumerate(rows):
        try:
            puzzles.append(parse_puzzle(row))
        except ValueError as err:
            raise WeakliftError(
                f"task {task!r}: row {i} of {source} is malformed ({err})",
                f"give it the Lichess puzzle columns {', '.join(COLUMNS)}",
            ) from err
    return puzzles


def load_chess_move(cfg: TaskConfig, seed: int) -> GenerationData:
    """Generation form: the puzzle position → the solution's first move in SAN (no +/#).

    ``contexts`` holds each puzzle position's FEN, so the metric can check a generated move's
    legality on it.
    """
    puzzles = _parse_rows(_read_rows(cfg, "chess_move"), str(cfg.path), "chess_move")
    return GenerationData(
        "chess_move",
        [format_move_prompt(p, cfg.board) for p in puzzles],
        [move_text(p.board, p.answer) for p in puzzles],
        "chess_move",
        source=str(cfg.path),
        contexts=[p.board.fen() for p in puzzles],
    )


def load_chess(cfg: TaskConfig, seed: int) -> ClassificationData:
    """Two statements per puzzle (answer: label 1, distractor: label 0), grouped by puzzle.

    ``task.max_examples`` keeps a seeded subset of whole puzzles (max_examples // 2 of them).
    """
    rows = _read_rows(cfg, "chess")
    if cfg.max_examples is not None and cfg.max_examples < 2 * len(rows):
        # Subsample puzzles, not statements, so no puzzle loses one of its two statements.
        keep = np.random.default_rng(seed).choice(len(rows), cfg.max_examples // 2, replace=False)
        rows = [rows[i] for i in np.sort(keep)]
    texts, labels, ratings = [], [], []
    skipped = 0
    for puzzle in _parse_rows(rows, str(cfg.path), "chess"):
        distractor = draw_distractor(puzzle, seed)
        if distractor is None:
            skipped += 1
            continue
        for move, label in ((puzzle.answer, 1), (distractor, 0)):
            texts.append(format_statement(puzzle, move, cfg.board))
            labels.append(label)
        ratings.append(puzzle.rating)
    return ClassificationData(
        name="chess",
        texts=texts,
        labels=np.asarray(labels, dtype=np.int64),
        label_names=["distractor", "solution"],
        source=str(cfg.path),
        groups=np.repeat(np.arange(len(ratings)), 2),
        columns={"rating": np.repeat(np.asarray(ratings, dtype=np.float64), 2)},
        difficulty="rating",
        extra={"skipped_single_move": skipped},
    )
