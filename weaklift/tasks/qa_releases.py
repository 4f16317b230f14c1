"""Readers for the multiple-choice releases of the suite, each from its OFFICIAL file format.

Each reader takes ``task.path`` (the folder the release unpacks to, or the folder holding its data
files directly) and returns every labelled question of every split it finds, pooled in sorted
path order; splits without public labels are left out. The statements are built by
``tasks/choice.py`` (the correct answer and one seeded distractor per question).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.tasks.base import ClassificationData
from weaklift.tasks.builtin import reject_file_options
from weaklift.tasks.choice import Question, context_template, pair_statements
from weaklift.tasks.loaders import load_hub, read_path, release_files, require_columns


def _parse(path: Path, parse: Callable[..., list[Question]], *more: Path) -> list[Question]:
    """``parse(path, *more)``; any malformed content is one error naming the file."""
    try:
        return parse(path, *more)
    except WeakliftError:
        raise
    except Exception as err:  # KeyError, ValueError, JSON/XML errors: the file is not the release
        raise WeakliftError(
            f"could not read {path} as its release format ({type(err).__name__}: {str(err)[:200]})",
            "point task.path at the unchanged release files",
        ) from err


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def _lst_labels(path: Path) -> list[int]:
    return [int(line) for line in path.read_text(encoding="utf-8").split()]


def _with_labels(files: list[Path], suffix: str) -> list[tuple[Path, Path]]:
    """(X.jsonl, X-labels.lst) pairs; an X.jsonl without its labels (a test split) is skipped."""
    pairs = []
    for data in files:
        labels = data.with_name(data.name[: -len(".jsonl")] + suffix)
        if labels.is_file():
            pairs.append((data, labels))
    return pairs


def _aligned(data: Path, labels: Path) -> tuple[list[dict], list[int]]:
    rows, ids = _jsonl(data), _lst_labels(labels)
    if len(rows) != len(ids):
        raise WeakliftError(
            f"{data} has {len(rows)} rows but {labels} {len(ids)} labels",
            "use the release's aligned .jsonl and -labels.lst files",
        )
    return rows, ids


# ---------------------------------------------------------------- DREAM


def read_dream(root: Path) -> list[Question]:
    """DREAM ``data/{train,dev,test}.json``: ``[[turns], [{question, choice, answer}], id]``."""

    def parse(path: Path) -> list[Question]:
        questions = []
        for turns, items, dialogue_id in json.loads(path.read_text(encoding="utf-8")):
            passage = "\n".join(turns)
            for k, item in enumerate(items):
                choices = tuple(str(c) for c in item["choice"])
                if item["answer"] not in choices:
                    raise ValueError(f"answer of {dialogue_id} question {k} is not a choice")
                correct = tuple(c == item["answer"] for c in choices)
                qid = f"{path.stem}:{dialogue_id}:{k}"
                questions.append(Question(qid, str(item["question"]), choices, correct, passage))
        return questions

    files = [p for p in release_files(root, "*.json") if p.stem in ("train", "dev", "test")]
    return [q for path in files for q in _parse(path, parse)]


# ---------------------------------------------------------------- OpenBookQA, CommonsenseQA


def _csqa_questions(path: Path) -> list[Question]:
    """The AI2 JSONL shape: ``answerKey``, ``question.stem``, ``question.choices[].label/text``.
    Rows without an answer key (a test split) are skipped."""
    questions = []
    for i, row in enumerate(_jsonl(path)):
        key = row.get("answerKey")
        if not key:
            continue
        choices = row["question"]["choices"]
        labels = [str(c["label"]) for c in choices]
        if key not in labels:
            raise ValueError(f"row {i}: answerKey {key!r} is none of {labels}")
        questions.append(
            Question(
                f"{path.stem}:{row.get('id', i)}",
                str(row["question"]["stem"]),
                tuple(str(c["text"]) for c in choices),
                tuple(label == key for label in labels),
            )
        )
    return questions


_CHOICE = re.compile(r"\(([A-Z])\)\s*")


def _openbookqa_tsv(path: Path) -> list[Question]:
    """OpenBookQA ``Main/*.tsv``: ID, Question Stem, Choices "(A) .. (B) ..", ..., Answer Key."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    questions = []
    for _, row in frame.iterrows():
        parts = _CHOICE.split(row["Choices"])[1:]  # [A, text, B, text, ...]
        labels, texts = parts[0::2], [t.strip() for t in parts[1::2]]
        key = row["Answer Key"].strip()
        if key not in labels:
            raise ValueError(f"question {row['ID']}: answer key {key!r} is none of {labels}")
        questions.append(
            Question(
                f"{path.stem}:{row['ID']}",
                row["Question Stem"],
                tuple(texts),
                tuple(label == key for label in labels),
            )
        )
    return questions


def read_openbookqa(root: Path) -> list[Question]:
    """OpenBookQA ``Data/Main/{train,dev,test}.jsonl`` (or the ``.tsv`` copies when a split has no
    JSONL); ``Data/Additional`` repeats Main's questions and is not read."""
    files = release_files(root, "*.jsonl", prefer=("Main",))
    stems = {p.stem for p in files}
    tsvs = [p for p in release_files(root, "*.tsv", prefer=("Main",)) if p.stem not in stems]
    return [q for p in files for q in _parse(p, _csqa_questions)] + [
        q for p in tsvs for q in _parse(p, _openbookqa_tsv)
    ]


def read_commonsense_qa(root: Path) -> list[Question]:
    """CommonsenseQA ``{train,dev}_rand_split.jsonl`` (the test file has no answer keys)."""
    return [q for p in release_files(root, "*.jsonl") for q in _parse(p, _csqa_questions)]


# ---------------------------------------------------------------- PIQA, Social IQa


def read_piqa(root: Path) -> list[Question]:
    """PIQA ``X.jsonl`` (goal, sol1, sol2) with ``X-labels.lst`` (0: sol1, 1: sol2)."""

    def parse_pair(data: Path, labels: Path) -> list[Question]:
        rows, ids = _aligned(data, labels)
        return [
            Question(
                f"{data.stem}:{i}",
                str(row["goal"]),
                (str(row["sol1"]), str(row["sol2"])),
                (label == 0, label == 1),
            )
            for i, (row, label) in enumerate(zip(rows, ids, strict=True))
        ]

    pairs = _with_labels(release_files(root, "*.jsonl"), "-labels.lst")
    return [q for data, labels in pairs for q in _parse(data, parse_pair, labels)]


def read_social_iqa(root: Path) -> list[Question]:
    """Social IQa ``X.jsonl`` (context, question, answerA/B/C) with ``X-labels.lst`` (1, 2, 3)."""

    def parse_pair(data: Path, labels: Path) -> list[Question]:
        rows, ids = _aligned(data, labels)
        questions = []
        for i, (row, label) in enumerate(zip(rows, ids, strict=True)):
            if label not in (1, 2, 3):
                raise ValueError(f"line {i + 1} of {labels.name}: label {label} is not 1, 2 or 3")
            answers = (str(row["answerA"]), str(row["answerB"]), str(row["answerC"]))
            correct = tuple(k + 1 == label for k in range(3))
            questions.append(
                Question(f"{data.stem}:{i}", str(row["question"]), answers, correct, row["context"])
            )
        return questions

    pairs = _with_labels(release_files(root, "*.jsonl"), "-labels.lst")
    return [q for data, labels in pairs for q in _parse(data, parse_pair, labels)]


# ---------------------------------------------------------------- QuAIL


def _quail_jsonl(path: Path) -> list[Question]:
    """``json/{train,dev,challenge}.jsonl``: context, question, answers, correct_answer_id."""
    questions = []
    for row in _jsonl(path):
        answers = tuple(str(a) for a in row["answers"])
        right = int(row["correct_answer_id"])
        questions.append(
            Question(
                f"{path.stem}:{row['id']}",
                str(row["question"]),
                answers,
                tuple(k == right for k in range(len(answers))),
                str(row["context"]),
            )
        )
    return questions


def _quail_xml(path: Path) -> list[Question]:
    """``xml/ordered/quail_1.3_{split}.xml``: answers carry ``correct="True"``."""
    questions = []
    for text in ET.parse(path).getroot():
        passage = (text.findtext("text_body") or "").strip()
        for q in text.find("questions"):
            answers = q.findall("a")
            questions.append(
                Question(
                    f"{_quail_split(path)}:{text.get('id')}_{q.get('id')}",
                    (q.text or "").strip(),
                    tuple((a.text or "").strip() for a in answers),
                    tuple(a.get("correct") == "True" for a in answers),
                    passage,
                )
            )
    return questions


def _quail_split(path: Path) -> str:
    return path.stem.rsplit("_", 1)[-1]  # quail_1.3_dev -> dev


def read_quail(root: Path) -> list[Question]:
    """QuAIL v1.3: the JSONL files, and the ordered XML of any split that has no JSONL beside it.
    ``*_randomized.xml`` repeats the questions without their answers (those are in
    ``*_key.json``), so it is never read."""
    files = [p for p in release_files(root, "*.jsonl") if "sample_pred" not in p.name]
    stems = {p.stem for p in files}
    xmls = [
        p
        for p in release_files(root, "quail_*.xml")
        if "randomized" not in p.name and _quail_split(p) not in stems
    ]
    return [q for p in files for q in _parse(p, _quail_jsonl)] + [
        q for p in xmls for q in _parse(p, _quail_xml)
    ]


# ---------------------------------------------------------------- MC-TACO, MultiRC


def read_mc_taco(root: Path) -> list[Question]:
    """MC-TACO ``dev_3783.tsv``/``test_9442.tsv``: sentence, question, answer, yes/no, category,
    one candidate answer a line; the lines with one sentence and question are one question."""

    def parse(path: Path) -> list[Question]:
        groups: dict[tuple[str, str], list[tuple[str, bool]]] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 5 or fields[3] not in ("yes", "no"):
                raise ValueError(f"line {number} is not sentence, question, answer, yes/no, type")
            groups.setdefault((fields[0], fields[1]), []).append((fields[2], fields[3] == "yes"))
        return [
            Question(
                f"{path.stem}:{k}",
                question,
                tuple(a for a, _ in candidates),
                tuple(ok for _, ok in candidates),
                sentence,
            )
            for k, ((sentence, question), candidates) in enumerate(groups.items())
        ]

    return [q for p in release_files(root, "*.tsv") for q in _parse(p, parse)]


_TAG = re.compile(r"<br\s*/?>|</?b>")


def read_multirc(root: Path) -> list[Question]:
    """SuperGLUE MultiRC JSONL: ``passage.text``, ``passage.questions[].question`` and
    ``.answers[].text/label``; the test file has no labels and is skipped. The passage's
    ``<b>Sent k: </b>`` and ``<br>`` markup becomes plain lines."""

    def parse(path: Path) -> list[Question]:
        questions = []
        for row in _jsonl(path):
            passage = row["passage"]
            text = _TAG.sub(lambda m: "\n" if m.group().startswith("<br") else "", passage["text"])
            for q in passage["questions"]:
                answers = q["answers"]
                if any("label" not in a for a in answers):
                    continue
                questions.append(
                    Question(
                        f"{path.stem}:{row.get('idx')}:{q.get('idx')}",
                        str(q["question"]),
                        tuple(str(a["text"]) for a in answers),
                        tuple(bool(int(a["label"])) for a in answers),
                        text.strip(),
                    )
                )
        return questions

    return [q for p in release_files(root, "*.jsonl") for q in _parse(p, parse)]


# ---------------------------------------------------------------- Cosmos QA

COSMOS_HUB = "allenai/cosmos_qa"
COSMOS_COLUMNS = ("context", "question", "answer0", "answer1", "answer2", "answer3", "label")


def cosmos_questions(rows: list[dict[str, Any]], source: str) -> list[Question]:
    """Cosmos QA rows (release ``{train,valid}.csv`` or the hub's columns); label -1 (the hub's
    test split) is unlabelled and skipped. "None of the above choices ." is an answer like any
    other: right when the release says so, a possible distractor otherwise (the paper's code
    always showed it wrong, which let the answer alone give the label away)."""
    questions = []
    for i, row in enumerate(rows):
        try:
            right = int(row["label"])
        except (TypeError, ValueError) as err:
            raise WeakliftError(
                f"task 'cosmos_qa': row {i} of {source} has label {row['label']!r}",
                "use the release files (label 0-3)",
            ) from err
        if right < 0:
            continue
        answers = tuple(str(row[f"answer{k}"]) for k in range(4))
        qid = str(row.get("id") or i)
        questions.append(
            Question(
                qid,
                str(row["question"]),
                answers,
                tuple(k == right for k in range(4)),
                str(row["context"]),
            )
        )
    return questions


def load_cosmos_qa(cfg: TaskConfig, seed: int) -> ClassificationData:
    """Cosmos QA from ``task.path`` (release CSVs or hub-column files) or the hub."""
    reject_file_options(cfg)
    if cfg.path is not None:
        rows, source = read_path(cfg.path, COSMOS_COLUMNS), str(cfg.path)
    else:
        rows, source = load_hub(COSMOS_HUB), f"hf:{COSMOS_HUB}"
        require_columns(rows, COSMOS_COLUMNS, source)
    questions = cosmos_questions(rows, source)
    return pair_statements("cosmos_qa", questions, seed, context_template, source, cfg.max_examples)
