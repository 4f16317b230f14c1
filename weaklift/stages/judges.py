"""Stages that make preference pairs from the student's own candidates (Cui et al. 2024):

prompts ──► candidates (student: K samples or beams, seeded) ──► each weak judge scores them
        ──► pairs (weighted judges: best = chosen, worst = rejected; disagreeing pairs dropped)

Each is a cached artifact: adding a judge rescores nothing else, and changing ``min_margin`` only
rebuilds the pairs. ``judged_pairs`` writes every pair to ``pairs.jsonl`` and the first few, with
the judges' margins, to ``sample.jsonl`` for a person to read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from weaklift.alignment import target_text
from weaklift.config import CandidatesConfig
from weaklift.judging import ScoredCandidates, build_pairs, judge_weights, score_candidates
from weaklift.models.causal_lm import LoadedLM
from weaklift.models.lm import Decoding, PromptRule, encode_prompts, generate
from weaklift.stages.context import StageContext
from weaklift.stages.preference_opt import LMSource, Pairs, preference_config
from weaklift.store import Artifact, save_json

log = logging.getLogger("weaklift")

CANDIDATES_VERSION = 3  # 3: the one generate and PromptRule (2: each candidate says if it ended)
JUDGE_VERSION = 3  # 3: PromptRule (2: a candidate that did not end is scored without EOS)
JUDGED_PAIRS_VERSION = 2


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def generate_candidates(
    lm: LoadedLM, prompts: list[str], cfg: CandidatesConfig, seed: int, rule: PromptRule
) -> tuple[list[list[str]], list[list[bool]]]:
    """K continuations per prompt, decoded without special tokens, and whether each ended (wrote
    EOS) within ``max_new_tokens``: the one ``generate`` (K best beams, or K seeded samples), on
    prompts cut by the one ``PromptRule``."""
    how = Decoding(
        num=cfg.num,
        max_new_tokens=cfg.max_new_tokens,
        sample=cfg.decoding == "sample",
        temperature=cfg.temperature,
        batch_size=cfg.batch_size,
        seed=seed,
    )
    prompt_ids = encode_prompts(lm.tokenizer, prompts, rule)
    rows = generate(lm.model, lm.tokenizer, prompt_ids, how, desc=f"candidates {lm.name}")
    texts = [
        [lm.tokenizer.decode(c.token_ids, skip_special_tokens=True) for c in row] for row in rows
    ]
    return texts, [[c.ended for c in row] for row in rows]


def candidates_stage(
    ctx: StageContext,
    student: LMSource,
    prompts: list[str],
    prompts_key: str,
    as_targets: bool = False,
) -> Artifact:
    """The student's K candidates per prompt (``candidates.jsonl``: prompt, candidates, ended).

    ``as_targets``: candidates take the form generation targets are trained in (``target_text``),
    so judges score, and DPO trains on, the tokens the generators learnt to write.
    """
    cand = preference_config(ctx).candidates
    seed = ctx.cfg.seed
    rule = PromptRule.from_config(ctx.cfg.generation)
    params = {
        "model": student.key,
        "candidates": cand.model_dump(),
        **rule.key(),
        "seed": seed,
        **({"form": "targets"} if as_targets else {}),
    }

    def compute(out: Path) -> dict:
        lm = student.load()
        log.info(
            "candidates: %s writes %d per prompt for %d prompts", lm.name, cand.num, len(prompts)
        )
        texts, ended = generate_candidates(lm, prompts, cand, seed, rule)
        if as_targets:
            texts = [[target_text(t) for t in row] for row in texts]
        rows = [
            {"prompt": p, "candidates": c, "ended": e}
            for p, c, e in zip(prompts, texts, ended, strict=True)
        ]
        _write_jsonl(out / "candidates.jsonl", rows)
        return {"prompts": len(rows)}

    return ctx.store.get_or_compute(
        "candidates", CANDIDATES_VERSION, params, {"prompts": prompts_key}, compute
    )


def pair_candidates_stage(ctx: StageContext, pairs: Pairs) -> Artifact:
    """Held-out pairs as two candidates per prompt, [chosen, rejected], for the judges to score
    (a file's replies are whole: both ended)."""

    def compute(out: Path) -> dict:
        rows = [
            {"prompt": p, "candidates": [c, r], "ended": [True, True]}
            for p, c, r in zip(pairs.prompts, pairs.chosen, pairs.rejected, strict=True)
        ]
        _write_jsonl(out / "candidates.jsonl", rows)
        return {"prompts": len(rows)}

    return ctx.store.get_or_compute(
        "candidates", CANDIDATES_VERSION, {"from": "pairs"}, {"pairs": pairs.key}, compute
    )


def read_candidates(candidates: Artifact) -> list[dict]:
    return _read_jsonl(candidates.path / "candidates.jsonl")


def judge_scores_stage(ctx: StageContext, judge: LMSource, candidates: Artifact) -> Artifact:
    """One weak judge's length-normalised log-likelihood of every candidate (``scores.json``)."""
    train = preference_config(ctx).train
    rule = PromptRule.from_config(ctx.cfg.generation)
    params = {"judge": judge.key, **rule.key(), "max_response_length": train.max_response_length}

    def compute(out: Path) -> dict:
        rows = read_candidates(candidates)
        scores = score_candidates(
            judge.load(),
            [r["prompt"] for r in rows],
            [r["candidates"] for r in rows],
            rule,
            train.max_response_length,
            ended=[r["ended"] for r in rows],
        )
        save_json(out, "scores", scores)
        return {"candidates": sum(len(s) for s in scores)}

    return ctx.store.get_or_compute(
        "judge_scores", JUDGE_VERSION, params, {"candidates": candidates.key}, compute
    )


def judged_pairs_stage(
    ctx: StageContext, candidates: Artifact, judges: dict[str, Artifact]
) -> Artifact:
    """Pairs from the weighted judges' verdicts; ``judges`` maps a judge's label to its scores."""
    cfg = preference_config(ctx).judges
    upstream = {"candidates": candidates.key, **{f"judge/{k}": a.key for k, a in judges.items()}}
    params = {"judges": cfg.model_dump(), "order": list(judges)}  # weights follow this order

    def compute(out: Path) -> dict:
        rows = read_candidates(candidates)
        per_judge = [a.json("scores") for a in judges.values()]
        scored = [
            ScoredCandidates(
                row["prompt"],
                row["candidates"],
                np.array([s[i] for s in per_judge], dtype=float),
                row["ended"],
            )
            for i, row in enumerate(rows)
        ]
        weights = judge_weights(scored, cfg.weights, cfg.temperature)
        pairs, dropped = build_pairs(scored, weights, cfg.min_margin)
        _write_jsonl(out / "pairs.jsonl", pairs)
        _write_jsonl(out / "sample.jsonl", pairs[: cfg.sample_size])
        log.info("judged pairs: %d of %d prompts kept (%s)", len(pairs), len(rows), dropped)
        return {
            "pairs": len(pairs),
            "prompts": len(rows),
            "dropped": dropped,
            "weights": dict(zip(judges, weights.tolist(), strict=True)),
        }

    return ctx.store.get_or_compute("judged_pairs", JUDGED_PAIRS_VERSION, params, upstream, compute)


def read_pairs(judged: Artifact) -> list[dict]:
    """Every judged pair as written (prompt, chosen, rejected, index, scores, judge margins)."""
    return _read_jsonl(judged.path / "pairs.jsonl")


def pairs_from_artifact(judged: Artifact) -> Pairs:
    """The judged pairs as training pairs, keyed by their artifact."""
    rows = read_pairs(judged)
    return Pairs(
        prompts=[r["prompt"] for r in rows],
        chosen=[r["chosen"] for r in rows],
        rejected=[r["rejected"] for r in rows],
        key=judged.key,
        chosen_ended=[r["chosen_ended"] for r in rows],
        rejected_ended=[r["rejected_ended"] for r in rows],
    )


def judged_pairs(
    ctx: StageContext,
    student: LMSource,
    judges: dict[str, LMSource],
    prompts: list[str],
    prompts_key: str,
    as_targets: bool = False,
) -> tuple[Artifact, Pairs]:
    """The whole chain: the student's candidates, every judge's scores, the pairs."""
    candidates = candidates_stage(ctx, student, prompts, prompts_key, as_targets)
    scores = {label: judge_scores_stage(ctx, judge, candidates) for label, judge in judges.items()}
    judged = judged_pairs_stage(ctx, candidates, scores)
    return judged, pairs_from_artifact(judged)
