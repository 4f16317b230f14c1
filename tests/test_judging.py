"""Weak judges → preference pairs: pair construction and judge weights by hand, judge scores by
hand, and the candidates → scores → pairs stages cached (a rerun generates and scores nothing)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.tiny_lms import make_tiny_lm, word_tokenizer
from weaklift.config import CandidatesConfig
from weaklift.config_files import load_config
from weaklift.judging import (
    ScoredCandidates,
    build_pairs,
    judge_agreement,
    judge_confidence,
    judge_weights,
    score_candidates,
)
from weaklift.models.causal_lm import load_causal_lm
from weaklift.models.lm import PromptRule
from weaklift.stages.context import StageContext
from weaklift.stages.judges import generate_candidates, judged_pairs
from weaklift.stages.preference_opt import LMSource
from weaklift.store import ArtifactStore

SCORED = [
    # both judges rank a1 > a2 > a3 (judge 1: a2 > a1, but not by enough to change the verdict)
    ScoredCandidates(
        "A",
        ["a1", "a2", "a3"],
        np.array([[-1.0, -2.0, -3.0], [-1.5, -1.0, -4.0]]),
        ended=[True, True, False],  # a3 was cut at the decoding limit
    ),
    # the judges disagree: judge 0 prefers b1 by 2 nats/token, judge 1 prefers b2 by 3
    ScoredCandidates("B", ["b1", "b2"], np.array([[-1.0, -3.0], [-4.0, -1.0]])),
    ScoredCandidates("C", ["c1"], np.array([[-1.0], [-2.0]])),  # one candidate: no pair
    ScoredCandidates("D", ["d1", "d1"], np.array([[-1.0, -1.0], [-2.0, -2.0]])),  # tie
]


def test_pairs_from_a_hand_made_scored_nbest_list():
    pairs, dropped = build_pairs(SCORED, np.array([0.5, 0.5]))
    assert dropped == {"too_few": 1, "tied": 1, "judges_disagree": 0}
    a, b = pairs
    # A: combined (−1.25, −1.5, −3.5) → a1 ≻ a3; judge margins (−1 − −3, −1.5 − −4) = (2, 2.5)
    assert (a["chosen"], a["rejected"], a["index"]) == ("a1", "a3", 0)
    assert (a["chosen_ended"], a["rejected_ended"]) == (True, False)
    assert a["chosen_score"] == pytest.approx(-1.25) and a["rejected_score"] == pytest.approx(-3.5)
    assert a["judge_margins"] == pytest.approx([2.0, 2.5])
    # B: combined (−2.5, −2.0) → b2 ≻ b1; judge 0 disagrees by 2
    assert (b["chosen"], b["rejected"], b["judge_margins"]) == ("b2", "b1", [-2.0, 3.0])
    assert (b["chosen_ended"], b["rejected_ended"]) == (True, True)  # no flags: all ended


def test_min_margin_drops_pairs_a_judge_ranks_the_other_way():
    pairs, dropped = build_pairs(SCORED, np.array([0.5, 0.5]), min_margin=1.0)
    assert [p["prompt"] for p in pairs] == ["A"] and dropped["judges_disagree"] == 1
    kept, _ = build_pairs(SCORED, np.array([0.5, 0.5]), min_margin=2.0)  # 2 is not beyond 2
    assert [p["prompt"] for p in kept] == ["A", "B"]
    fixed, _ = build_pairs(SCORED, judge_weights(SCORED, [9.0, 1.0]))  # judge 0 decides B
    assert (fixed[1]["chosen"], fixed[1]["rejected"]) == ("b1", "b2")


def test_dynamic_judge_weights_by_hand():
    def softmax(xs):
        e = [math.exp(x) for x in xs]
        return [v / sum(e) for v in e]

    # confidence of judge m: mean over prompts of max_k softmax_k(scores[m])
    conf = [np.mean([max(softmax(s.scores[m])) for s in SCORED]) for m in range(2)]
    assert judge_confidence(SCORED) == pytest.approx(conf)
    expected = softmax([c / 0.5 for c in conf])
    assert judge_weights(SCORED, "dynamic", temperature=0.5) == pytest.approx(expected)
    assert judge_weights(SCORED, "uniform") == pytest.approx([0.5, 0.5])
    assert judge_weights(SCORED, [3.0, 1.0]) == pytest.approx([0.75, 0.25])


def test_judge_agreement_with_the_task_metric():
    pairs, _ = build_pairs(SCORED, np.array([0.5, 0.5]))
    quality = {"a1": 1.0, "a3": 0.5, "b1": 0.7, "b2": 0.2}
    agreement = judge_agreement(pairs, lambda index, text: quality[text])
    assert agreement == {"agree": 0.5, "tie": 0.0, "disagree": 0.5}


PROMPTS = ["is the cat big ?", "is paris a city ?", "is the sky blue ?"]


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    texts = PROMPTS + ["yes", "no", "it is", "not"]
    root = tmp_path_factory.mktemp("lms")
    return {
        name: make_tiny_lm(root / name, word_tokenizer(texts), seed=seed)
        for seed, name in enumerate("sjk")
    }


@pytest.mark.parametrize("ended", [None, [[True, False], [False]]])
def test_judge_scores_are_length_normalised_log_likelihoods(lms, ended):
    """Per token, EOS included where the candidate ended (all, without flags)."""
    judge = load_causal_lm(str(lms["j"]), device="cpu")
    candidates = [["yes", "no it is"], ["not"]]
    scores = score_candidates(judge, PROMPTS[:2], candidates, PromptRule(64), 16, ended=ended)
    tok = judge.tokenizer
    flags = ended or [[True, True], [True]]
    for prompt, options, got, ends in zip(PROMPTS[:2], candidates, scores, flags, strict=True):
        for text, value, end in zip(options, got, ends, strict=True):
            prompt_ids = tok(prompt)["input_ids"]
            response = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] * end
            with torch.no_grad():
                logp = torch.log_softmax(
                    judge.model(input_ids=torch.tensor([prompt_ids + response])).logits[0], -1
                )
            by_hand = sum(
                float(logp[len(prompt_ids) + i - 1, t]) for i, t in enumerate(response)
            ) / len(response)
            assert value == pytest.approx(by_hand, abs=1e-4)


def test_beam_candidates_are_the_k_best_beams_and_sampling_is_seeded(lms):
    """Batched, left-padded beam search gives each prompt's own K best beams, whatever the seed;
    sampling reruns agree under one seed and differ under another."""
    student = load_causal_lm(str(lms["s"]), device="cpu")
    tok = student.tokenizer
    beam = CandidatesConfig(num=3, decoding="beam", max_new_tokens=4, batch_size=2)
    got, ended = generate_candidates(student, PROMPTS, beam, seed=0, rule=PromptRule(32))
    assert (got, ended) == generate_candidates(student, PROMPTS, beam, 1, PromptRule(32))
    for prompt, candidates, ends in zip(PROMPTS, got, ended, strict=True):
        ids = tok(prompt, return_tensors="pt")
        alone = student.model.generate(
            **ids,
            num_beams=3,
            num_return_sequences=3,
            do_sample=False,
            early_stopping=True,
            max_new_tokens=4,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        new_tokens = alone[:, ids["input_ids"].shape[1] :]
        assert candidates == tok.batch_decode(new_tokens, skip_special_tokens=True)
        assert ends == [tok.eos_token_id in row for row in new_tokens.tolist()]

    sample = CandidatesConfig(num=3, decoding="sample", max_new_tokens=4, batch_size=2)
    first = generate_candidates(student, PROMPTS, sample, seed=0, rule=PromptRule(32))
    assert first == generate_candidates(student, PROMPTS, sample, seed=0, rule=PromptRule(32))
    assert first != generate_candidates(student, PROMPTS, sample, seed=1, rule=PromptRule(32))
    assert [len(row) for row in first[0]] == [len(row) for row in first[1]] == [3, 3, 3]


def test_candidates_scores_and_pairs_are_cached(lms, tmp_path):
    cfg = load_config(
        None,
        [
            "task.name=pairs_file",
            "strong.mode=lora",
            "preference.candidates.num=3",
            "preference.candidates.max_new_tokens=4",
            "preference.judges.sample_size=2",
        ],
    )

    def run(store, cfg):
        ctx = StageContext(store=store, data=None, cfg=cfg)
        judges = {name: LMSource.from_model(str(lms[name])) for name in ("j", "k")}
        return judged_pairs(ctx, LMSource.from_model(str(lms["s"])), judges, PROMPTS, "prompts")

    store = ArtifactStore(tmp_path / "artifacts")
    judged, pairs = run(store, cfg)
    assert dict(store.executions) == {"candidates": 1, "judge_scores": 2, "judged_pairs": 1}
    folder = next((tmp_path / "artifacts" / "candidates").iterdir())
    candidates = [
        json.loads(line) for line in (folder / "candidates.jsonl").read_text().splitlines()
    ]
    assert [c["prompt"] for c in candidates] == PROMPTS
    assert [len(c["candidates"]) for c in candidates] == [3, 3, 3]
    assert [len(c["ended"]) for c in candidates] == [3, 3, 3]
    ended = {
        (c["prompt"], text): end
        for c in candidates
        for text, end in zip(c["candidates"], c["ended"], strict=True)
    }
    for texts, flags in (
        (pairs.chosen, pairs.chosen_ended),
        (pairs.rejected, pairs.rejected_ended),
    ):
        assert flags == [ended[p, t] for p, t in zip(pairs.prompts, texts, strict=True)]
    assert len(pairs) == judged.meta["pairs"] == 3 - sum(judged.meta["dropped"].values())
    sample = (judged.path / "sample.jsonl").read_text().splitlines()
    assert len(sample) == min(2, len(pairs))
    assert set(judged.meta["weights"]) == {"j", "k"}

    again = ArtifactStore(tmp_path / "artifacts")
    judged_again, pairs_again = run(again, cfg)
    assert sum(again.executions.values()) == 0  # nothing generated, nothing scored
    assert pairs_again == pairs

    stricter = cfg.model_copy(deep=True)
    stricter.preference.judges.min_margin = 0.0
    third = ArtifactStore(tmp_path / "artifacts")
    run(third, stricter)
    assert dict(third.executions) == {"judged_pairs": 1}  # only the pairs are rebuilt
