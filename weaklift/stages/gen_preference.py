"""Preference optimisation of a generation student from weak judges (Cui et al. 2024):

student (trained on weak outputs) ──► K candidates per transfer prompt (sampled or beam n-best)
        ──► each weak generator scores them (length-normalised log-likelihood)
        ──► best vs worst of the weighted scores = a preference pair
        ──► DPO / cDPO / IPO starting from the student, which is also the frozen reference
        ──► beam search on test, scored like every other student

The pieces are the pair-task stages (``stages.judges``, ``stages.preference_opt``); this module
wires them to generation artifacts and measures how often the judges' chosen candidate really is
better by the task metric. That check reads the transfer references, which no model trains on:
it is a diagnostic of the judges, reported beside the results.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from weaklift.config import PreferenceConfig
from weaklift.judging import judge_agreement
from weaklift.models.causal_lm import LMSource
from weaklift.stages.context import StageContext
from weaklift.stages.generation import decode_stage
from weaklift.stages.judges import judged_pairs, read_pairs
from weaklift.stages.preference_opt import policy_source, preference_train_stage
from weaklift.store import Artifact, stable_hash


@dataclass(frozen=True)
class PreferenceOutcome:
    """What preference optimisation of one student produced: per loss, the policy's test
    generations (label ``"<student> → <loss>"``), and a readable report (pairs, judges, training)."""

    generations: dict[str, Artifact]
    report: dict


def optimise_student_preferences(
    ctx: StageContext,
    pref: PreferenceConfig,
    student: str,
    start: LMSource,
    judges: dict[str, LMSource],
) -> PreferenceOutcome:
    """Judged pairs from ``start``'s candidates on transfer, then one policy per loss."""
    transfer_key = stable_hash({"splits": ctx.splits_key, "split": "transfer"})
    judged, pairs = judged_pairs(
        ctx, start, judges, ctx.texts("transfer"), transfer_key, as_targets=True
    )
    report: dict = {
        **{k: judged.meta[k] for k in ("pairs", "prompts", "dropped", "weights")},
        "pairs_file": str(judged.path / "pairs.jsonl"),
        "judge_agreement": transfer_agreement(ctx, read_pairs(judged)),
        "losses": {},
    }
    generations = {}
    for spec in pref.losses:
        policy = preference_train_stage(ctx, start, ctx.cfg.strong, pairs, spec)
        label = f"{student} → {spec.label}"
        source = policy_source(start, policy, name=f"{start.name} {label}")
        generations[label] = decode_stage(ctx, source, "test", 1)
        history = policy.meta["history"]
        tail = slice(-max(1, len(history["loss"]) // 4), None)  # the last quarter of the steps
        report["losses"][spec.label] = {
            "student": label,
            "train_seconds": policy.meta["seconds"],
            "steps": len(history["loss"]),
            "loss_first_last": [history["loss"][0], history["loss"][-1]],
            "reward_accuracy_last_quarter": float(np.mean(history["reward_accuracy"][tail])),
            "reward_margin_last_quarter": float(np.mean(history["reward_margin"][tail])),
        }
    return PreferenceOutcome(generations, report)


def transfer_agreement(ctx: StageContext, pairs: list[dict]) -> dict[str, dict[str, float]]:
    """Per summary value of the task metric (SLU-F1, intent accuracy, ...): the shares of pairs
    whose chosen candidate scores higher, equal or lower than the rejected one against the transfer
    reference, the agreement among pairs that differ, and both candidates' mean value."""
    metric, rows, contexts = ctx.data.task_metric, ctx.splits["transfer"], ctx.data.contexts

    @functools.cache
    def summary(index: int, text: str) -> dict[str, float]:
        row = rows[index]
        context = None if contexts is None else [contexts[row]]
        return metric.summarize(metric.stats([text], [ctx.data.targets[row]], context))

    keys = list(summary(pairs[0]["index"], pairs[0]["chosen"])) if pairs else [metric.primary]
    result = {}
    for key in keys:
        shares = judge_agreement(pairs, lambda index, text, key=key: summary(index, text)[key])
        decided = shares["agree"] + shares["disagree"]
        chosen = [summary(p["index"], p["chosen"])[key] for p in pairs]
        rejected = [summary(p["index"], p["rejected"])[key] for p in pairs]
        result[key] = {
            **shares,
            "agree_untied": shares["agree"] / decided if decided > 0 else float("nan"),
            "chosen_mean": float(np.mean(chosen)) if pairs else float("nan"),
            "rejected_mean": float(np.mean(rejected)) if pairs else float("nan"),
        }
    return result
