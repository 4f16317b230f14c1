"""Weak judges turn scored candidates into preference pairs (Cui et al. 2024).

The strong student writes K candidates per prompt; each weak judge m scores candidate k by its
length-normalised log-likelihood given the prompt, s[m, k] = log p_m(y_k | x) / |y_k|. The judges'
scores are combined with member weights (uniform, fixed, or the dynamic confidence weights of
``multi_naive``), the best candidate becomes ``chosen`` and the worst ``rejected``. A pair can be
dropped when some judge disagrees, i.e. prefers the rejected candidate by more than ``min_margin``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from weaklift import distributed
from weaklift.methods.ensemble import member_confidence, normalise_weights
from weaklift.models.causal_lm import LoadedLM
from weaklift.models.lm import PromptRule, encode_responses, length_groups, response_logprobs


@dataclass(frozen=True)
class ScoredCandidates:
    """One prompt's candidates and every judge's score of each, (M, K)."""

    prompt: str
    candidates: list[str]
    scores: np.ndarray  # (M, K): judge m's length-normalised log-likelihood of candidate k
    ended: list[bool] | None = None  # per candidate: did it end (EOS) before the decoding limit


def judge_confidence(scored: list[ScoredCandidates]) -> np.ndarray:
    """Each judge's mean, over prompts, of its largest softmax-over-candidates probability, (M,)."""
    per_prompt = [
        member_confidence(torch.softmax(torch.as_tensor(s.scores, dtype=torch.float64), -1)[None])
        for s in scored
    ]  # each (M,): how sharply the judge singles out one candidate
    return torch.stack(per_prompt).mean(0).numpy()


def judge_weights(
    scored: list[ScoredCandidates], weights: str | list[float], temperature: float = 1.0
) -> np.ndarray:
    """Member weights (M,) summing to 1: ``uniform``, ``dynamic`` or a fixed list."""
    num_judges = scored[0].scores.shape[0]
    if weights == "uniform":
        return np.full(num_judges, 1.0 / num_judges)
    if weights == "dynamic":  # multi_naive's rule: softmax over members of confidence / T
        return torch.softmax(torch.as_tensor(judge_confidence(scored)) / temperature, 0).numpy()
    return normalise_weights(list(weights)).double().numpy()


def build_pairs(
    scored: list[ScoredCandidates], weights: np.ndarray, min_margin: float | None = None
) -> tuple[list[dict], dict[str, int]]:
    """(chosen = best, rejected = worst) by the weighted judge score, one pair per prompt at most.

    Skipped: prompts with fewer than two candidates, ties (best and worst score or text equal),
    and, with ``min_margin``, pairs that some judge ranks the other way by more than the margin.
    """
    pairs, dropped = [], {"too_few": 0, "tied": 0, "judges_disagree": 0}
    for index, item in enumerate(scored):
        if len(item.candidates) < 2:
            dropped["too_few"] += 1
            continue
        combined = weights @ item.scores  # (K,)
        best, worst = int(np.argmax(combined)), int(np.argmin(combined))
        if combined[best] == combined[worst] or item.candidates[best] == item.candidates[worst]:
            dropped["tied"] += 1
            continue
        judge_margins = item.scores[:, best] - item.scores[:, worst]  # (M,) > 0: judge agrees
        if min_margin is not None and judge_margins.min() < -min_margin:
            dropped["judges_disagree"] += 1
            continue
        ended = item.ended or [True] * len(item.candidates)
        pairs.append(
            {
                "index": index,  # position among the scored prompts (to find its reference)
                "prompt": item.prompt,
                "chosen": item.candidates[best],
                "rejected": item.candidates[worst],
                "chosen_ended": ended[best],
                "rejected_ended": ended[worst],
                "chosen_score": float(combined[best]),
                "rejected_score": float(combined[worst]),
                "judge_margins": [float(m) for m in judge_margins],
            }
        )
    return pairs, dropped


def judge_agreement(pairs: list[dict], quality) -> dict[str, float]:
    """How often the judges' chosen candidate really is better by the task metric.

    ``quality(index, text) -> float`` scores a candidate of prompt ``index`` against its reference
    (e.g. SLU-F1). Returns the shares of pairs where chosen scores higher, equal, and lower.
    """
    if not pairs:
        return {"agree": float("nan"), "tie": float("nan"), "disagree": float("nan")}
    diffs = np.array(
        [quality(p["index"], p["chosen"]) - quality(p["index"], p["rejected"]) for p in pairs]
    )
    return {
        "agree": float((diffs > 0).mean()),
        "tie": float((diffs == 0).mean()),
        "disagree": float((diffs < 0).mean()),
    }


@torch.no_grad()
def score_candidates(
    judge: LoadedLM,
    prompts: list[str],
    candidates: list[list[str]],
    rule: PromptRule,
    max_response_length: int,
    batch_size: int = 16,
    ended: list[list[bool]] | None = None,
) -> list[list[float]]:
    """Length-normalised log-likelihood of every candidate under ``judge``: EOS included where the
    candidate ended (``ended``, default all), so a cut candidate is scored as what was written."""
    flat = [(i, c) for i, options in enumerate(candidates) for c in options]
    flat_ended = None if ended is None else [e for row in ended for e in row]
    prompt_ids, response_ids = encode_responses(
        judge.tokenizer,
        [prompts[i] for i, _ in flat],
        [c for _, c in flat],
        rule,
        max_response_length,
        flat_ended,
    )
    judge.model.eval()
    scores = [0.0] * len(flat)
    lengths = [len(p) + len(r) for p, r in zip(prompt_ids, response_ids, strict=True)]
    groups = length_groups(lengths, batch_size)
    bar = tqdm(total=len(groups), desc=f"judge {judge.name}", leave=False)

    def judge_group(group: list[int]) -> list[float]:
        logps, tokens = response_logprobs(
            judge.model,
            [prompt_ids[i] for i in group],
            [response_ids[i] for i in group],
            judge.tokenizer.pad_token_id,
        )
        bar.update(distributed.processes())
        return (logps / tokens.clamp_min(1)).cpu().tolist()

    with bar:  # several processes: each judges its share of the groups
        judged = distributed.map_sharded(groups, judge_group)
    for group, values in zip(groups, judged, strict=True):
        for i, value in zip(group, values, strict=True):
            scores[i] = value
    out, offset = [], 0
    for options in candidates:
        out.append(scores[offset : offset + len(options)])
        offset += len(options)
    return out
