"""Multiple-choice questions as true/false statements, the way Burns et al. 2023 binarise them.

Rule (every multiple-choice task of the suite): each question gives exactly two statements, its
correct answer (label 1) and ONE distractor (label 0) drawn from its wrong answers by a coin seeded
with (task.seed, task, question id). Both share the question's ``group``, so a split keeps them
together and every split is exactly balanced. Questions whose candidates are labelled one by one
(MultiRC, MC-TACO) give one seeded true and one seeded false candidate; a question with no true or
no false candidate left (or whose only wrong answers repeat the right one) is skipped and counted.
Seeding per question keeps a question's pair fixed whatever rows surround it.

Truncation: the text is ``{passage}\\nQuestion: {question}\\nAnswer: {answer}`` and the task sets
``extra["truncation_side"] = "left"`` (read by ``stages/context.py``), so a text longer than the
model's ``max_length`` loses the START of the passage: the question and the answer, at the end,
are always kept (as long as they fit on their own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.tasks.base import ClassificationData
from weaklift.tasks.builtin import reject_file_options


@dataclass(frozen=True)
class Question:
    """One question and its candidate answers; ``correct[i]`` says whether answer i is right."""

    qid: str
    question: str
    answers: tuple[str, ...]
    correct: tuple[bool, ...]
    passage: str = ""


Template = Callable[[Question, str], str]
QuestionReader = Callable[[Path], list[Question]]  # task.path -> questions in file order


def passage_template(question: Question, answer: str) -> str:
    """Passage first, question and answer last (the passage is what left truncation cuts)."""
    return f"{question.passage}\nQuestion: {question.question}\nAnswer: {answer}"


def context_template(question: Question, answer: str) -> str:
    """As ``passage_template``, with the passage named (Cosmos QA's wording in Burns et al.)."""
    return f"Context: {question.passage}\nQuestion: {question.question}\nAnswer: {answer}"


def question_template(question: Question, answer: str) -> str:
    """No passage: the question and the answer."""
    return f"Question: {question.question}\nAnswer: {answer}"


def _coin(seed: int, task: str, qid: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{task}:{qid}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def draw_pair(question: Question, seed: int, task: str) -> tuple[str, str] | None:
    """(true answer, distractor) of one question, or None when it has no usable pair."""
    rights = [a for a, ok in zip(question.answers, question.correct, strict=True) if ok]
    rng = _coin(seed, task, question.qid)
    if not rights:
        return None
    right = rights[int(rng.integers(len(rights)))]
    wrongs = [
        a
        for a, ok in zip(question.answers, question.correct, strict=True)
        if not ok and a.strip() != right.strip()
    ]
    if not wrongs:
        return None
    return right, wrongs[int(rng.integers(len(wrongs)))]


def pair_statements(
    name: str,
    questions: Sequence[Question],
    seed: int,
    template: Template,
    source: str,
    max_examples: int | None = None,
) -> ClassificationData:
    """Two statements per question (true answer, then the distractor), grouped by question.

    ``max_examples`` keeps a seeded subset of whole questions (max_examples // 2 of them), so no
    question loses one of its two statements and the pool stays exactly balanced.
    """
    pairs = [(number, draw_pair(q, seed, name)) for number, q in enumerate(questions)]
    usable = [(number, pair) for number, pair in pairs if pair is not None]
    skipped = len(pairs) - len(usable)
    if max_examples is not None and max_examples < 2 * len(usable):
        keep = np.random.default_rng(seed).choice(len(usable), max_examples // 2, replace=False)
        usable = [usable[i] for i in np.sort(keep)]
    texts, labels, answers, groups = [], [], [], []
    for number, pair in usable:
        question = questions[number]
        for answer, label in zip(pair, (1, 0), strict=True):
            texts.append(template(question, answer))
            labels.append(label)
            answers.append(answer)
            groups.append(number)
    if not texts:
        raise WeakliftError(
            f"task {name!r}: no question in {source} has both a right and a wrong answer",
            "point task.path at the release's labelled files",
        )
    return ClassificationData(
        name=name,
        texts=texts,
        labels=np.asarray(labels, dtype=np.int64),
        label_names=["distractor", "correct"],
        source=source,
        groups=np.asarray(groups, dtype=np.int64),
        extra={
            "answer": answers,
            "skipped_questions": skipped,
            "truncation_side": "left",
        },
    )


@dataclass(frozen=True)
class ChoiceTask:
    """A multiple-choice release: how to read its questions and how a statement reads."""

    name: str
    folder: str  # its folder name under the data directory (``../shared/data/<folder>``)
    read: QuestionReader
    template: Template = passage_template

    def load(self, cfg: TaskConfig, seed: int) -> ClassificationData:
        reject_file_options(cfg)
        if cfg.path is None:
            raise WeakliftError(
                f"task {self.name!r} needs task.path (its release files)",
                f"set task.path=../shared/data/{self.folder}",
            )
        questions = self.read(Path(cfg.path).expanduser())
        if not questions:
            raise WeakliftError(
                f"task {self.name!r}: no labelled release files found under {cfg.path}",
                f"set task.path to the {self.name} release folder (or the folder of its files)",
            )
        return pair_statements(
            self.name, questions, seed, self.template, str(cfg.path), cfg.max_examples
        )
