"""Preference pairs for DPO: (prompt, chosen response, rejected response), from a file or HH-RLHF.

Unlike ``anthropic_hh_pairs`` (reward modelling on whole dialogues), DPO needs the prompt apart
from the two responses, because only response tokens are scored. HH-RLHF stores two full
dialogues that share everything up to the last assistant turn: the prompt is that shared prefix,
cut just after its last ``\\n\\nAssistant:``, and the responses are what follows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from weaklift.config import TaskConfig
from weaklift.errors import WeakliftError
from weaklift.store import stable_hash
from weaklift.tasks.builtin import reject_file_options
from weaklift.tasks.loaders import load_hub, read_path

HH_HUB_ID = "Anthropic/hh-rlhf"
ASSISTANT_TURN = "\n\nAssistant:"
PAIR_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PairsData:
    """N preference pairs: ``chosen[i]`` is preferred to ``rejected[i]`` as a reply to ``prompts[i]``."""

    name: str
    prompts: list[str]
    chosen: list[str]
    rejected: list[str]
    source: str = ""
    extra: dict = field(default_factory=dict)
    builder: str = ""  # "<task>/<version>", set by load_task

    def __post_init__(self) -> None:
        if not self.prompts:
            raise WeakliftError(f"task {self.name!r} loaded no pairs", "check task.path")
        if not len(self.prompts) == len(self.chosen) == len(self.rejected):
            raise WeakliftError(
                f"task {self.name!r}: prompts, chosen and rejected differ in length"
            )

    @property
    def labels(self) -> np.ndarray:
        """One class (every pair says chosen ≻ rejected), so the splits need no special case."""
        return np.zeros(len(self.prompts), dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return 1

    @cached_property
    def groups(self) -> np.ndarray:
        """Pairs with the same prompt share a split, so no test prompt was trained on, (N,)."""
        return np.array([stable_hash(prompt, 12) for prompt in self.prompts])

    def fingerprint(self) -> str:
        """Hash of the pairs and their builder: a changed file or builder never reuses splits."""
        content = {"prompts": self.prompts, "chosen": self.chosen, "rejected": self.rejected}
        return stable_hash({**content, "builder": self.builder})

    def subsample(self, n: int, seed: int) -> PairsData:
        """A seeded subset of n pairs in original order."""
        keep = np.sort(np.random.default_rng(seed).choice(len(self.prompts), size=n, replace=False))
        return PairsData(
            name=self.name,
            prompts=[self.prompts[i] for i in keep],
            chosen=[self.chosen[i] for i in keep],
            rejected=[self.rejected[i] for i in keep],
            source=self.source,
            extra={**self.extra, "subsampled_from": len(self.prompts)},
        )


def split_dialogues(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """(prompt, chosen reply, rejected reply) from two dialogues; None if they share no assistant turn
    or the replies are empty or identical."""
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(ASSISTANT_TURN)
    if cut < 0:
        return None
    cut += len(ASSISTANT_TURN)
    prompt, reply_a, reply_b = chosen[:cut], chosen[cut:], rejected[cut:]
    if not reply_a.strip() or not reply_b.strip() or reply_a == reply_b:
        return None
    return prompt, reply_a, reply_b


def load_hh_dpo(cfg: TaskConfig, seed: int) -> PairsData:
    """HH-RLHF (``*.jsonl.gz`` in task.path, or the hub) as prompt + chosen + rejected replies."""
    reject_file_options(cfg)
    rows = read_path(cfg.path, ("chosen", "rejected")) if cfg.path else load_hub(HH_HUB_ID)
    triples = [split_dialogues(str(r["chosen"]), str(r["rejected"])) for r in rows]
    kept = [t for t in triples if t is not None]
    return PairsData(
        name="anthropic_hh_dpo",
        prompts=[t[0] for t in kept],
        chosen=[t[1] for t in kept],
        rejected=[t[2] for t in kept],
        source=str(cfg.path) if cfg.path else HH_HUB_ID,
        extra={"skipped_pairs": len(rows) - len(kept)},
    )


def load_pairs_file(cfg: TaskConfig, seed: int) -> PairsData:
    """Any JSONL/CSV/Parquet file (or folder) with columns prompt, chosen, rejected."""
    reject_file_options(cfg)
    if cfg.path is None:
        raise WeakliftError(
            "task pairs_file needs task.path",
            "pass task.path=<JSONL/CSV/Parquet with columns prompt, chosen, rejected>",
        )
    rows = read_path(cfg.path, PAIR_COLUMNS)
    for i, row in enumerate(rows):
        for column in PAIR_COLUMNS:
            if not isinstance(row[column], str) or (column != "prompt" and not row[column].strip()):
                raise WeakliftError(
                    f"{cfg.path}: row {i} has no text in column {column!r}",
                    "give every row a prompt and non-empty chosen and rejected responses",
                )
    kept = [
        r for r in rows if r["chosen"] != r["rejected"]
    ]  # identical replies carry no preference
    return PairsData(
        name="pairs_file",
        prompts=[r["prompt"] for r in kept],
        chosen=[r["chosen"] for r in kept],
        rejected=[r["rejected"] for r in kept],
        source=str(cfg.path),
        extra={"skipped_pairs": len(rows) - len(kept)},
    )
