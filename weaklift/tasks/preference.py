"""Preference tasks (reward modelling, Burns et al. 2023 §5): (chosen, rejected) pairs.

The order within each pair is randomised, exactly half chosen-first, so a model cannot score
above chance by learning "the first one is better".
"""

from __future__ import annotations

import numpy as np

from weaklift.config import TaskConfig
from weaklift.tasks.base import PreferenceData
from weaklift.tasks.builtin import reject_file_options, task_rng
from weaklift.tasks.loaders import load_hub, read_path

HH_HUB_ID = "Anthropic/hh-rlhf"
_SEED_OFFSET = 107


def balanced_order(n: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask with exactly ⌊n/2⌋ True (chosen first), in random positions."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: n // 2]] = True
    return mask


def pairs_from_rows(
    name: str, chosen: list[str], rejected: list[str], rng: np.random.Generator, source: str
) -> PreferenceData:
    chosen_first = balanced_order(len(chosen), rng)
    first = [c if f else r for c, r, f in zip(chosen, rejected, chosen_first, strict=True)]
    second = [r if f else c for c, r, f in zip(chosen, rejected, chosen_first, strict=True)]
    return PreferenceData(
        name=name,
        texts=first,
        texts_b=second,
        labels=chosen_first.astype(np.int64),
        label_names=["second preferred", "first preferred"],
        source=source,
        extra={"truncation_side": "left"},  # the replies differ at the end of the dialogue
    )


def load_hh_pairs(cfg: TaskConfig, seed: int) -> PreferenceData:
    """HH-RLHF rows (chosen, rejected) from task.path (jsonl/jsonl.gz files) or the hub."""
    reject_file_options(cfg)
    rows = read_path(cfg.path, ("chosen", "rejected")) if cfg.path else load_hub(HH_HUB_ID)
    rows = [r for r in rows if r["chosen"] != r["rejected"]]  # identical pairs carry no preference
    source = str(cfg.path) if cfg.path else HH_HUB_ID
    rng = task_rng(seed, _SEED_OFFSET)
    return pairs_from_rows(
        "anthropic_hh_pairs",
        [r["chosen"] for r in rows],
        [r["rejected"] for r in rows],
        rng,
        source,
    )
