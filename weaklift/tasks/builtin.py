"""Built-in classification tasks: a hub id, the columns it needs, and a row formatter.

The formatters follow openai/weak-to-strong (Burns et al. 2023): each raw row becomes one statement,
and where the dataset has no binary label a seeded coin decides whether the statement is the true
one. Each task also reads the hub columns from local files (``task.path``) and, for SciQ, SST-2,
BoolQ (release or SuperGLUE JSONL) and HH-RLHF, the original release files. The suite's
multiple-choice tasks (Cosmos QA among them) live in ``choice.py`` and ``qa_releases.py``. The generic ``file`` task formats any table with a template.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.tasks.base import ClassificationData
from weaklift.tasks.loaders import Reader, Row, load_hub, read_path, require_columns

Formatter = Callable[[Row, np.random.Generator], tuple[str, int] | None]
Loader = Callable[[TaskConfig, int], ClassificationData]  # (config, task.seed) -> pool


@dataclass(frozen=True)
class TaskSpec:
    """One registry entry: how to load the task and what ``weaklift tasks`` says about it."""

    name: str
    description: str
    load: Loader
    kind: str = "classification"
    version: int = 1  # bump when the builder's output changes: splits and models downstream redo


def task_rng(seed: int, offset: int) -> np.random.Generator:
    """The label-choice RNG: a fixed per-task offset keeps tasks' coins independent of each other."""
    return np.random.default_rng(seed + offset)


def reject_file_options(cfg: TaskConfig) -> None:
    """Built-ins format rows themselves; a template or label column would be silently ignored."""
    if cfg.template is not None:
        raise WeakliftError(
            f"task.template is only used by task `file`, not {cfg.name!r}",
            "remove task.template, or set task.name=file",
        )
    if cfg.label_column != "label":
        raise WeakliftError(
            f"task.label_column is only used by task `file`, not {cfg.name!r}",
            "remove task.label_column, or set task.name=file",
        )
    if cfg.group_column is not None:
        raise WeakliftError(
            f"task.group_column is only used by task `file`, not {cfg.name!r}",
            "remove task.group_column, or set task.name=file",
        )


# ---------------------------------------------------------------- label parsing


def _int_label(value: Any) -> int:
    """An integer class id from an int, an integral float or a numeric string."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | np.integer | str):
        return int(value)
    raise ValueError(f"label {value!r} is not an integer")


def _bool_label(value: Any) -> int:
    """0/1 from a bool, 0/1 or the strings true/false (CSV files spell booleans many ways)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return int(value.strip().lower() == "true")
    label = _int_label(value)
    if label not in (0, 1):
        raise ValueError(f"label {value!r} is not a boolean")
    return label


# ---------------------------------------------------------------- formatters


def format_sciq(row: Row, rng: np.random.Generator) -> tuple[str, int]:
    """Half the questions get the correct answer (label 1), half a random distractor (label 0)."""
    label = int(rng.random() < 0.5)
    answer = row["correct_answer"] if label else row[f"distractor{rng.integers(1, 4)}"]
    return f"Q: {row['question']} A: {answer}", label


def format_sst2(row: Row, rng: np.random.Generator) -> tuple[str, int] | None:
    label = _int_label(row["label"])
    return None if label < 0 else (str(row["sentence"]), label)  # hub test split: label -1


def format_boolq(row: Row, rng: np.random.Generator) -> tuple[str, int] | None:
    """Passage first, question last: the task truncates from the left, so a long passage loses
    its start and the question is always kept."""
    if row["answer"] is None:
        return None  # SuperGLUE test split: no label
    return f"Passage: {row['passage']}\nQuestion: {row['question']}", _bool_label(row["answer"])


def read_boolq_release(path: Path) -> list[Row]:
    """BoolQ JSONL as the original release (``answer``) or SuperGLUE (``label``) spells it."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            answer = row["answer"] if "answer" in row else row.get("label")
            rows.append({"question": row["question"], "passage": row["passage"], "answer": answer})
    return rows


def format_amazon_polarity(row: Row, rng: np.random.Generator) -> tuple[str, int]:
    return f"{row['title']} {row['content']}", _bool_label(row["label"])


def format_anthropic_hh(row: Row, rng: np.random.Generator) -> tuple[str, int]:
    """As in the paper's code: a coin picks the chosen (label 1) or rejected (label 0) reply."""
    label = int(rng.random() < 0.5)
    return str(row["chosen"] if label else row["rejected"]), label


def read_sst2_release(path: Path) -> list[Row]:
    """``stsa.binary.*``: one "<label> <sentence>" per line, as hub columns sentence, label."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            label, _, sentence = line.strip().partition(" ")
            rows.append({"sentence": sentence, "label": int(label)})
    return rows


# ---------------------------------------------------------------- hub tasks


@dataclass(frozen=True)
class HubTask:
    """A hub dataset's columns (from the hub, local files, or the original release) + a formatter."""

    name: str
    hub_id: str
    columns: tuple[str, ...]
    formatter: Formatter
    seed_offset: int
    label_names: tuple[str, ...] = ("false", "true")
    release_readers: Mapping[str, Reader] = field(default_factory=dict)
    truncation_side: str = "right"  # left: the text ends with what must survive truncation

    def load(self, cfg: TaskConfig, seed: int) -> ClassificationData:
        reject_file_options(cfg)
        if cfg.path is not None:
            rows, source = read_path(cfg.path, self.columns, self.release_readers), str(cfg.path)
        else:
            rows, source = load_hub(self.hub_id), f"hf:{self.hub_id}"
            require_columns(rows, self.columns, source)
        texts, labels = self._format(rows, source, task_rng(seed, self.seed_offset))
        return ClassificationData(
            name=self.name,
            texts=texts,
            labels=np.asarray(labels, dtype=np.int64),
            label_names=list(self.label_names),
            source=source,
            extra={
                "skipped_unlabelled": len(rows) - len(texts),
                **({"truncation_side": "left"} if self.truncation_side == "left" else {}),
            },
        )

    def _format(
        self, rows: list[Row], source: str, rng: np.random.Generator
    ) -> tuple[list[str], list[int]]:
        texts, labels = [], []
        for i, row in enumerate(rows):
            try:
                example = self.formatter(row, rng)
            except (ValueError, TypeError, IndexError) as err:
                raise WeakliftError(
                    f"task {self.name!r}: row {i} of {source} is malformed ({err})",
                    f"give it the columns of {self.hub_id}: {', '.join(self.columns)}",
                ) from err
            if example is not None:
                texts.append(example[0])
                labels.append(example[1])
        return texts, labels


SCIQ = HubTask(
    "sciq",
    "allenai/sciq",
    ("question", "correct_answer", "distractor1", "distractor2", "distractor3"),
    format_sciq,
    seed_offset=101,
)
SST2 = HubTask(
    "sst2",
    "stanfordnlp/sst2",
    ("sentence", "label"),
    format_sst2,
    seed_offset=102,
    label_names=("negative", "positive"),
    release_readers={"stsa.binary.*": read_sst2_release},
)
BOOLQ = HubTask(
    "boolq",
    "google/boolq",
    ("question", "passage", "answer"),
    format_boolq,
    seed_offset=103,
    release_readers={"*.jsonl": read_boolq_release},
    truncation_side="left",
)
AMAZON_POLARITY = HubTask(
    "amazon_polarity",
    "fancyzhx/amazon_polarity",
    ("title", "content", "label"),
    format_amazon_polarity,
    seed_offset=105,
    label_names=("negative", "positive"),
)
ANTHROPIC_HH = HubTask(
    "anthropic_hh",
    "Anthropic/hh-rlhf",
    ("chosen", "rejected"),
    format_anthropic_hh,
    seed_offset=106,
    label_names=("rejected", "chosen"),
)


# ---------------------------------------------------------------- generic file task


def template_columns(template: str) -> list[str]:
    """Columns a format string names, in order; positional or malformed fields are errors."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise WeakliftError(
            f"task.template {template!r} is not a valid format string ({err})",
            'write it like "{passage}\\nQuestion: {question}"',
        ) from err
    columns = [re.split(r"[.\[]", name, maxsplit=1)[0] for name in fields]
    if not columns or any(not c or c.isdigit() for c in columns):
        raise WeakliftError(
            f"task.template {template!r} must name columns in braces",
            'write it like "{passage}\\nQuestion: {question}"',
        )
    return list(dict.fromkeys(columns))


def encode_labels(values: Sequence[Any], column: str) -> tuple[np.ndarray, list[str]]:
    """Label ids and their names: ints 0..K-1 kept, bools -> 0/1, anything else by sorted value."""
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise WeakliftError(
                f"row {i} has no label in column {column!r} (task.label_column)",
                "fill in every label or drop unlabelled rows",
            )
    if all(isinstance(v, bool | np.bool_) for v in values):
        return np.asarray(values, dtype=np.int64), ["False", "True"]
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) for v in values):
        return _encode_int_labels(values, column)
    names = sorted({str(v) for v in values})
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[str(v)] for v in values], dtype=np.int64), names


def _encode_int_labels(values: Sequence[Any], column: str) -> tuple[np.ndarray, list[str]]:
    labels = np.asarray(values, dtype=np.int64)
    if labels.min() < 0:
        raise WeakliftError(
            f"label {int(labels.min())} in column {column!r} (task.label_column) is out of range",
            "use integer labels 0..K-1, or string labels (mapped to ids automatically)",
        )
    return labels, [str(i) for i in range(int(labels.max()) + 1)]


def _render(template: str, rows: list[Row], source: str) -> list[str]:
    texts = []
    for i, row in enumerate(rows):
        try:
            texts.append(template.format_map(row))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
            raise WeakliftError(
                f"task.template {template!r} failed on row {i} of {source} ({err!r})",
                "use plain {column} fields that match the file's columns",
            ) from err
    return texts


def load_file_task(cfg: TaskConfig, seed: int) -> ClassificationData:
    """Any local table: ``task.template`` builds the text, ``task.label_column`` the label."""
    if cfg.path is None:
        raise WeakliftError(
            "task `file` needs task.path", "set task.path=<JSONL/CSV/Parquet file or folder>"
        )
    if not cfg.template:
        raise WeakliftError(
            "task `file` needs task.template",
            'set task.template="{text}" (a format string over the file\'s columns)',
        )
    needed = dict.fromkeys(template_columns(cfg.template), "task.template")
    needed.setdefault(cfg.label_column, "task.label_column")
    if cfg.group_column is not None:
        needed.setdefault(cfg.group_column, "task.group_column")
    rows = read_path(cfg.path, needed)
    labels, names = encode_labels([row[cfg.label_column] for row in rows], cfg.label_column)
    if len(np.unique(labels)) < 2:
        raise WeakliftError(
            f"column {cfg.label_column!r} (task.label_column) in {cfg.path} holds a single class",
            "a classification task needs at least two label values",
        )
    return ClassificationData(
        name="file",
        texts=_render(cfg.template, rows, str(cfg.path)),
        labels=labels,
        label_names=names,
        source=str(cfg.path),
        extra={"label_mapping": {name: i for i, name in enumerate(names)}},
        groups=None
        if cfg.group_column is None
        else np.asarray([str(row[cfg.group_column]) for row in rows]),
    )
