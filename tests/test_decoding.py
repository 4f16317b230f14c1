"""Batched beam search: deterministic, in input order, batched = one at a time, and its per-token
log-probs are the model's own (teacher forcing gives the same numbers)."""

from __future__ import annotations

import pytest

from tests.tiny_lms import bpe_tokenizer, make_tiny_lm
from weaklift.models.causal_lm import load_causal_lm
from weaklift.models.lm import (
    Decoding,
    PromptRule,
    encode_prompts,
    generate,
    length_groups,
    token_logprobs,
)

PROMPTS = [
    "Utterance: wake me up at seven\nSemantics:",
    "Utterance: play jazz\nSemantics:",
    "Utterance: what is the weather like in paris tomorrow morning\nSemantics:",
    "Utterance: hi\nSemantics:",
    "Utterance: set an alarm\nSemantics:",
]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    folder = make_tiny_lm(tmp_path_factory.mktemp("lm"), bpe_tokenizer(PROMPTS * 3, 300))
    loaded = load_causal_lm(str(folder), device="cpu")
    loaded.tokenizer.padding_side = "left"
    return loaded


def _decode(lm, prompts, batch_size, beams=3, n_best=2, length_penalty=1.0):
    how = Decoding(
        num=n_best, beams=beams, max_new_tokens=6, length_penalty=length_penalty,
        batch_size=batch_size,
    )  # fmt: skip
    return generate(lm.model, lm.tokenizer, _ids(lm, prompts), how)


def _ids(lm, prompts):
    return encode_prompts(lm.tokenizer, prompts, PromptRule(128))


def _forced(lm, prompts, continuations):
    """Teacher-forced log-probs from the one scorer."""
    return token_logprobs(lm.model, _ids(lm, prompts), continuations, lm.tokenizer.pad_token_id)


def test_length_groups_sort_by_length_and_keep_every_index():
    assert length_groups([5, 2, 9, 2, 4], 2) == [[1, 3], [4, 0], [2]]


def test_beam_search_is_deterministic_and_batched_equals_single(lm):
    batched = _decode(lm, PROMPTS, batch_size=4)
    again = _decode(lm, PROMPTS, batch_size=4)
    single = [_decode(lm, [p], batch_size=1)[0] for p in PROMPTS]
    assert [[c.token_ids for c in row] for row in batched] == [
        [c.token_ids for c in row] for row in again
    ]
    assert len(batched) == len(PROMPTS) and all(len(row) == 2 for row in batched)
    for row_b, row_s in zip(batched, single, strict=True):
        assert [c.token_ids for c in row_b] == [c.token_ids for c in row_s]
        for cb, cs in zip(row_b, row_s, strict=True):
            assert cb.token_logprobs == pytest.approx(cs.token_logprobs, abs=1e-4)


def test_token_logprobs_are_the_models_and_sum_to_the_beam_score(lm):
    rows = _decode(lm, PROMPTS, batch_size=4)
    best = [row[0] for row in rows]
    forced = _forced(lm, PROMPTS, [c.token_ids for c in best])
    for cand, teacher in zip(best, forced, strict=True):
        assert cand.token_logprobs == pytest.approx(teacher, abs=1e-4)
        assert cand.score == pytest.approx(sum(cand.token_logprobs) / len(cand.token_ids), abs=1e-4)
    for row in rows:
        assert row[0].score >= row[1].score


def test_greedy_decoding_path(lm):
    rows = _decode(lm, PROMPTS[:2], batch_size=2, beams=1, n_best=1)
    forced = _forced(lm, PROMPTS[:2], [r[0].token_ids for r in rows])
    for row, teacher in zip(rows, forced, strict=True):
        assert row[0].token_logprobs == pytest.approx(teacher, abs=1e-4)
