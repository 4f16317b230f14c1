"""Generation tasks: (prompt, target text) pairs and the task metric that scores an output.

- ``slurp``: an utterance → ``scenario_action | type=filler | ...`` (SLURP release files); metrics
  SLU-F1 (primary) and intent accuracy, as the official scorer computes them.
- ``gsm8k``: a grade-school maths question → its worked solution ending ``#### <answer>``;
  metric final-number accuracy.
- ``chess_move`` (in ``tasks/chess.py``): a puzzle position → the solution's first move in SAN;
  metric first-move accuracy (on a mate-in-one any mating move counts), with the legal-move rate.
- ``file`` with ``task.kind=generation``: ``task.template`` builds the prompt, ``task.target_column``
  holds the target; metric exact match (whitespace-normalised).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.generation_metrics import METRICS, TaskMetric, serialise_slurp
from weaklift.store import stable_hash
from weaklift.tasks.loaders import Row, read_path

SLURP_PROMPT = "Utterance: {sentence}\nSemantics:"
GSM8K_PROMPT = "Question: {question}\nAnswer:"


@dataclass(frozen=True)
class GenerationData:
    """Prompts and reference targets; ``metric`` names the task metric in ``METRICS``.

    ``labels`` is all zeros: splits are drawn from it like any task, but there are no classes.
    """

    name: str
    texts: list[str]  # prompts
    targets: list[str]  # reference outputs, without a leading space
    metric: str
    source: str = ""
    extra: dict = field(default_factory=dict)
    groups: np.ndarray | None = None  # every example is its own group
    builder: str = ""  # "<task>/<version>", set by load_task
    contexts: list[str] | None = None  # per example, what a contextual metric also reads (a FEN)

    def __post_init__(self) -> None:
        if not self.texts:
            raise WeakliftError(
                f"task {self.name!r} loaded no examples", "check task.path and its columns"
            )
        if self.contexts is not None and len(self.contexts) != len(self.texts):
            raise WeakliftError(
                f"task {self.name!r}: {len(self.texts)} prompts but {len(self.contexts)} contexts"
            )
        if len(self.texts) != len(self.targets):
            raise WeakliftError(
                f"task {self.name!r}: {len(self.texts)} prompts but {len(self.targets)} targets"
            )
        for i, (prompt, target) in enumerate(zip(self.texts, self.targets, strict=True)):
            if not isinstance(prompt, str) or not prompt or not isinstance(target, str):
                raise WeakliftError(f"task {self.name!r}: example {i} has an empty prompt")
            if not target.strip():
                raise WeakliftError(
                    f"task {self.name!r}: example {i} has an empty target",
                    "fill in task.target_column on every row",
                )

    @property
    def labels(self) -> np.ndarray:
        return np.zeros(len(self.texts), dtype=np.int64)

    @property
    def label_names(self) -> list[str]:
        return []

    @property
    def task_metric(self) -> TaskMetric:
        return METRICS[self.metric]

    def fingerprint(self) -> str:
        content = {"prompts": self.texts, "targets": self.targets, "metric": self.metric}
        if self.contexts is not None:  # only when present, so other tasks' keys stay as they were
            content["contexts"] = self.contexts
        return stable_hash({**content, "builder": self.builder})

    def subset(self, keep: np.ndarray) -> GenerationData:
        return GenerationData(
            name=self.name,
            texts=[self.texts[i] for i in keep],
            targets=[self.targets[i] for i in keep],
            metric=self.metric,
            source=self.source,
            extra={**self.extra, "subsampled_from": len(self.texts)},
            builder=self.builder,
            contexts=None if self.contexts is None else [self.contexts[i] for i in keep],
        )


def _reject_classification_options(cfg: TaskConfig) -> None:
    if cfg.template is not None or cfg.label_column != "label" or cfg.target_column is not None:
        raise WeakliftError(
            f"task {cfg.name!r} formats its rows itself; task.template/label_column/target_column "
            "are for task `file`",
            "remove them, or set task.name=file",
        )


def _require_path(cfg: TaskConfig, folder: str) -> str:
    """No hub fallback here: the release files are read from disk."""
    if cfg.path is None:
        raise WeakliftError(
            f"task {cfg.name!r} needs task.path", f"set task.path=../shared/data/{folder}"
        )
    return cfg.path


def slurp_example(row: Row) -> tuple[str, str]:
    """(prompt, target) of one SLURP record; fillers are the span's lower-cased token surfaces,
    as the official scorer reads gold entities."""
    tokens = row["tokens"]
    entities = [
        (str(e["type"]), " ".join(tokens[i]["surface"].lower() for i in e["span"]))
        for e in row["entities"]
    ]
    target = serialise_slurp(str(row["scenario"]), str(row["action"]), entities)
    return SLURP_PROMPT.format(sentence=row["sentence"]), target


def load_slurp(cfg: TaskConfig, seed: int) -> GenerationData:
    """SLURP text (release ``*.jsonl``: sentence, scenario, action, tokens, entities)."""
    _reject_classification_options(cfg)
    path = _require_path(cfg, "slurp")
    rows = read_path(path, ("sentence", "scenario", "action", "tokens", "entities"))
    prompts, targets = [], []
    for i, row in enumerate(rows):
        try:
            prompt, target = slurp_example(row)
        except (KeyError, IndexError, TypeError) as err:
            raise WeakliftError(
                f"task 'slurp': row {i} of {path} is malformed ({err!r})",
                "point task.path at the SLURP release files (devel.jsonl, test.jsonl)",
            ) from err
        prompts.append(prompt)
        targets.append(target)
    return GenerationData("slurp", prompts, targets, "slurp", source=str(path))


def load_gsm8k(cfg: TaskConfig, seed: int) -> GenerationData:
    """GSM8K (release ``*.jsonl``: question, answer); the target is the full worked solution."""
    _reject_classification_options(cfg)
    path = _require_path(cfg, "gsm8k")
    rows = read_path(path, ("question", "answer"))
    return GenerationData(
        "gsm8k",
        [GSM8K_PROMPT.format(question=row["question"]) for row in rows],
        [str(row["answer"]) for row in rows],
        "final_number",
        source=str(path),
    )


def load_file_generation(cfg: TaskConfig, seed: int) -> GenerationData:
    """Any local table with ``task.kind=generation``: template → prompt, target_column → target."""
    from weaklift.tasks.builtin import _render, template_columns

    if cfg.path is None or not cfg.template or not cfg.target_column:
        raise WeakliftError(
            "task `file` with task.kind=generation needs task.path, task.template and "
            "task.target_column",
            'set e.g. task.template="Q: {question}\\nA:" task.target_column=answer',
        )
    needed = dict.fromkeys(template_columns(cfg.template), "task.template")
    needed.setdefault(cfg.target_column, "task.target_column")
    rows = read_path(cfg.path, needed)
    return GenerationData(
        "file",
        _render(cfg.template, rows, str(cfg.path)),
        [str(row[cfg.target_column]).strip() for row in rows],
        "exact_match",
        source=str(cfg.path),
    )
