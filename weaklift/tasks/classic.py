"""Single-text and sentence-pair tasks of the suite, from their OFFICIAL release files.

Each task keeps the release's own binary label (no coin, no distractor) and pools every labelled
split it finds under ``task.path`` (the unpacked release folder, or the folder of its files).

| task | statement | label 1 |
| --- | --- | --- |
| ``cola`` | the sentence | acceptable |
| ``wic`` | both sentences, then "Does '<word>' mean the same in both sentences?" | same sense |
| ``tweeteval_sentiment`` | the tweet | positive (negative 0; neutral left out unless ``task.classes=all``) |
| ``ethics_justice`` | the scenario | reasonable |
| ``ethics_deontology`` | "Request: .. / Excuse: .." | reasonable excuse |
| ``ethics_commonsense`` | the scenario | wrong (as the release labels it) |
| ``ethics_virtue`` | "Scenario: .. / Trait: .." | the trait fits |
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.tasks.base import ClassificationData
from weaklift.tasks.builtin import reject_file_options
from weaklift.tasks.loaders import release_files

Example = tuple[str, int, str]  # (text, label, group)


def _need_path(cfg: TaskConfig, folder: str) -> Path:
    reject_file_options(cfg)
    if cfg.path is None:
        raise WeakliftError(
            f"task {cfg.name!r} needs task.path (its release files)",
            f"set task.path=../shared/data/{folder}",
        )
    return Path(cfg.path).expanduser()


def _pool(name: str, examples: list[Example], label_names: list[str], source: str, **extra):
    if not examples:
        raise WeakliftError(
            f"task {name!r}: no labelled release files found under {source}",
            f"set task.path to the {name} release folder (or the folder of its files)",
        )
    return ClassificationData(
        name=name,
        texts=[t for t, _, _ in examples],
        labels=np.asarray([y for _, y, _ in examples], dtype=np.int64),
        label_names=label_names,
        source=source,
        groups=np.asarray([g for _, _, g in examples]),
        extra=dict(extra),
    )


def _malformed(path: Path, line: int, what: str) -> WeakliftError:
    return WeakliftError(
        f"{path} line {line} is not {what}", "point task.path at the unchanged release files"
    )


# ---------------------------------------------------------------- CoLA


def load_cola(cfg: TaskConfig, seed: int) -> ClassificationData:
    """CoLA ``cola_public/raw/*.tsv``: source, label 0/1, original mark, sentence (no header).
    ``raw/`` is read alone when present (``tokenized/`` holds the same sentences tokenised)."""
    root = _need_path(cfg, "cola")
    examples = []
    for path in release_files(root, "*.tsv", prefer=("raw",)):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 4 or fields[1] not in ("0", "1"):
                raise _malformed(path, number, "source, label 0/1, mark, sentence")
            examples.append((fields[3], int(fields[1]), f"{path.stem}:{number}"))
    return _pool("cola", examples, ["unacceptable", "acceptable"], str(root))


# ---------------------------------------------------------------- WiC


def wic_text(word: str, first: str, second: str) -> str:
    return (
        f"Sentence 1: {first}\nSentence 2: {second}\nDoes '{word}' mean the same in both sentences?"
    )


def load_wic(cfg: TaskConfig, seed: int) -> ClassificationData:
    """WiC ``{split}/{split}.data.txt`` (word, PoS, i-j, sentence 1, sentence 2) with
    ``{split}.gold.txt`` (T/F a line); a split without its gold file is skipped."""
    root = _need_path(cfg, "wic")
    examples = []
    for data in release_files(root, "*.data.txt"):
        gold = data.with_name(data.name.replace(".data.txt", ".gold.txt"))
        if not gold.is_file():
            continue
        lines = [x for x in data.read_text(encoding="utf-8").splitlines() if x.strip()]
        golds = gold.read_text(encoding="utf-8").split()
        if len(lines) != len(golds):
            raise WeakliftError(
                f"{data} has {len(lines)} lines but {gold} {len(golds)}",
                "use the release's aligned data and gold files",
            )
        for number, (line, mark) in enumerate(zip(lines, golds, strict=True), 1):
            fields = line.split("\t")
            if len(fields) != 5 or mark not in ("T", "F"):
                raise _malformed(data, number, "word, PoS, i-j, sentence 1, sentence 2 with T/F")
            word, _, _, first, second = fields
            examples.append(
                (wic_text(word, first, second), int(mark == "T"), f"{data.name}:{number}")
            )
    return _pool("wic", examples, ["different", "same"], str(root))


# ---------------------------------------------------------------- TweetEval sentiment


def load_tweeteval_sentiment(cfg: TaskConfig, seed: int) -> ClassificationData:
    """TweetEval ``datasets/sentiment/{split}_text.txt`` + ``{split}_labels.txt`` (0 negative,
    1 neutral, 2 positive; ``mapping.txt``). Default: negative (0) vs positive (1), neutral
    tweets left out, as Burns et al. binarise sentiment; ``task.classes=all`` keeps 3 classes."""
    root = _need_path(cfg, "tweeteval")
    _check_sentiment_mapping(root)
    keep_all = cfg.classes == "all"
    examples, neutral = [], 0
    for text_file in release_files(root, "*_text.txt"):
        labels_file = text_file.with_name(text_file.name.replace("_text.txt", "_labels.txt"))
        if not labels_file.is_file():
            continue
        texts = text_file.read_text(encoding="utf-8").splitlines()
        labels = labels_file.read_text(encoding="utf-8").split()
        if len(texts) != len(labels):
            raise WeakliftError(
                f"{text_file} has {len(texts)} lines but {labels_file} {len(labels)}",
                "use the release's aligned text and labels files",
            )
        for number, (text, label) in enumerate(zip(texts, labels, strict=True), 1):
            if label not in ("0", "1", "2") or not text.strip():
                raise _malformed(labels_file, number, "a label 0, 1 or 2 beside a tweet")
            if label == "1" and not keep_all:
                neutral += 1
                continue
            value = int(label) if keep_all else int(label == "2")
            examples.append((text, value, f"{text_file.name}:{number}"))
    names = ["negative", "neutral", "positive"] if keep_all else ["negative", "positive"]
    return _pool("tweeteval_sentiment", examples, names, str(root), skipped_neutral=neutral)


SENTIMENT_MAPPING = {"0": "negative", "1": "neutral", "2": "positive"}


def _check_sentiment_mapping(root: Path) -> None:
    """``mapping.txt`` ("id<TAB>name" a line), when present, must say what the binarisation
    assumes (0 negative, 1 neutral, 2 positive): another subset's mapping would be misread."""
    for path in release_files(root, "mapping.txt"):
        pairs = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
        mapping = {p[0].strip(): p[-1].strip().lower() for p in pairs if len(p) == 2}
        if mapping != SENTIMENT_MAPPING:
            raise WeakliftError(
                f"{path} maps labels as {mapping}, not TweetEval sentiment's {SENTIMENT_MAPPING}",
                "point task.path at TweetEval's datasets/sentiment folder",
            )


# ---------------------------------------------------------------- ETHICS


@dataclass(frozen=True)
class EthicsSubset:
    """One ETHICS subset: its folder, file prefix, columns and how a row reads."""

    name: str  # the task name
    folder: str  # justice, deontology, commonsense, virtue
    prefix: str  # justice_, deontology_, cm_, virtue_
    columns: tuple[str, ...]
    text: Callable[[dict[str, str]], tuple[str, str]]  # row -> (statement, group key)
    label_names: tuple[str, str]

    def load(self, cfg: TaskConfig, seed: int) -> ClassificationData:
        """``task.path`` is the ETHICS root (holding ``justice/``, ...) or this subset's folder;
        ``*_ambig.csv`` (commonsense, no labels) is not read."""
        root = _need_path(cfg, "ethics")
        base = root / self.folder if (root / self.folder).is_dir() else root
        examples = []
        for path in release_files(base, f"{self.prefix}*.csv"):
            if "ambig" in path.name:
                continue
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in self.columns if c not in (reader.fieldnames or [])]
                if missing:
                    raise WeakliftError(
                        f"{path} lacks column(s) {missing} of ETHICS {self.folder}",
                        f"point task.path at the ETHICS release (columns {', '.join(self.columns)})",
                    )
                for number, row in enumerate(reader, 2):
                    if row["label"] not in ("0", "1"):
                        raise _malformed(path, number, "a row with label 0 or 1")
                    text, group = self.text(row)
                    examples.append((text, int(row["label"]), f"{self.folder}:{group}"))
        return _pool(self.name, examples, list(self.label_names), str(base))


def _virtue(row: dict[str, str]) -> tuple[str, str]:
    scenario, sep, trait = row["scenario"].rpartition("[SEP]")
    if not sep:
        raise WeakliftError(
            f"ETHICS virtue scenario {row['scenario'][:60]!r} has no [SEP] and trait",
            "point task.path at the unchanged ETHICS virtue files",
        )
    return f"Scenario: {scenario.strip()}\nTrait: {trait.strip()}", scenario.strip()


ETHICS = {
    subset.name: subset
    for subset in (
        EthicsSubset(
            "ethics_justice",
            "justice",
            "justice_",
            ("label", "scenario"),
            lambda r: (r["scenario"], r["scenario"]),
            ("unreasonable", "reasonable"),
        ),
        EthicsSubset(
            "ethics_deontology",
            "deontology",
            "deontology_",
            ("label", "scenario", "excuse"),
            lambda r: (f"Request: {r['scenario']}\nExcuse: {r['excuse']}", r["scenario"]),
            ("unreasonable", "reasonable"),
        ),
        EthicsSubset(
            "ethics_commonsense",
            "commonsense",
            "cm_",
            ("label", "input", "is_short", "edited"),
            lambda r: (r["input"], r["input"]),
            ("not wrong", "wrong"),
        ),
        EthicsSubset(
            "ethics_virtue",
            "virtue",
            "virtue_",
            ("label", "scenario"),
            _virtue,
            ("trait does not fit", "trait fits"),
        ),
    )
}
