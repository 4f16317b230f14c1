"""Weak words → strong tokens across two different fast tokenizers, against hand computation."""

from __future__ import annotations

import pytest

from tests.tiny_lms import bpe_tokenizer, metaspace_tokenizer
from weaklift.alignment import WeakOutput, check_offsets, strong_targets, weak_output
from weaklift.errors import WeakliftError

TEXTS = [
    "wake me up at seven am tomorrow",
    "alarm_set | time=seven am | date=tomorrow",
    "play some jazz music",
    "play_music | music_genre=jazz",
] * 3
OUTPUT = " alarm_set | time=seven am"  # words: alarm_set, |, time=seven, am


@pytest.fixture(scope="module")
def weak_tok():
    return bpe_tokenizer(TEXTS, vocab_size=280)


@pytest.fixture(scope="module")
def strong_tok():
    return metaspace_tokenizer(TEXTS, vocab_size=60)


def test_the_two_tokenizers_split_differently(weak_tok, strong_tok):
    weak = weak_tok.convert_ids_to_tokens(weak_tok(OUTPUT, add_special_tokens=False)["input_ids"])
    strong = strong_tok.convert_ids_to_tokens(
        strong_tok(OUTPUT, add_special_tokens=False)["input_ids"]
    )
    assert weak == ["Ġa", "la", "r", "m", "_", "se", "t", "Ġ|", "Ġ", "t", "i", "me", "=", "se",
                    "ven", "Ġa", "m"]  # fmt: skip
    assert strong == ["▁a", "la", "r", "m", "_se", "t", "▁|", "▁", "t", "i", "m", "e=", "seven",
                      "▁am"]  # fmt: skip


def test_word_logprobs_are_sums_of_their_weak_tokens(weak_tok):
    ids = weak_tok(OUTPUT, add_special_tokens=False)["input_ids"] + [weak_tok.eos_token_id]
    logprobs = [-0.1 * (k + 1) for k in range(17)] + [-0.05]
    out = weak_output(weak_tok, ids, logprobs, weak_tok.eos_token_id)
    assert out.words == ["alarm_set", "|", "time=seven", "am"] and out.ended
    # tokens 1-7 → alarm_set; 8 (Ġ|) → |; 9 (a lone Ġ joins the next word) - 15 → time=seven;
    # 16-17 → am; then EOS.
    expected = [-2.8, -0.8, -(0.9 + 1.0 + 1.1 + 1.2 + 1.3 + 1.4 + 1.5), -(1.6 + 1.7), -0.05]
    assert out.word_logprobs == pytest.approx(expected)
    assert sum(out.word_logprobs) == pytest.approx(sum(logprobs))


def test_non_canonical_weak_tokens_still_align(weak_tok):
    """Beam search may emit " am" as Ġ + a + m instead of Ġa + m: spans come from decoding."""
    canonical = weak_tok(" am", add_special_tokens=False)["input_ids"]
    pieces = weak_tok.convert_tokens_to_ids(["Ġ", "a", "m"])
    assert pieces != canonical
    out = weak_output(weak_tok, pieces, [-1.0, -2.0, -4.0], weak_tok.eos_token_id)
    assert out.words == ["am"] and not out.ended
    assert out.word_logprobs == pytest.approx([-7.0])


def test_strong_tokens_map_to_words_by_character_offsets(strong_tok):
    out = WeakOutput(["alarm_set", "|", "time=seven", "am"], [-2.8, -0.8, -8.4, -3.3, -0.05], True)
    ids, words = strong_targets(strong_tok, out, max_length=100)
    tokens = strong_tok.convert_ids_to_tokens(ids)
    assert tokens[-1] == "<eos>"
    # ▁a la r m _se t → word 0; ▁| → 1; ▁ t i m e= seven → 2; ▁am → 3; EOS → 4
    assert words == [0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 3, 4]
    assert strong_targets(strong_tok, out, max_length=5) == (ids[:5], words[:5])


def test_ground_truth_is_certain_and_ends():
    out = WeakOutput.ground_truth("play_music | music_genre=jazz")
    assert out.words == ["play_music", "|", "music_genre=jazz"]
    assert out.word_logprobs == [0.0, 0.0, 0.0, 0.0] and out.ended


def test_slow_tokenizers_are_refused():
    class Slow:
        is_fast = False

    with pytest.raises(WeakliftError, match="slow"):
        check_offsets(Slow(), "some-model")


def test_whitespace_only_output_cut_at_the_limit_is_not_ended(weak_tok):
    """Defect 2: two lone Ġ tokens and no EOS (cut at max_new_tokens) were returned as
    word_logprobs=[-5.0], ended=True, scoring (and training) an EOS that was never written."""
    space = weak_tok.convert_tokens_to_ids(["Ġ", "Ġ"])
    out = weak_output(weak_tok, space, [-1.0, -2.0], weak_tok.eos_token_id)
    assert out.words == [] and not out.ended
    assert out.word_logprobs == pytest.approx([-3.0])
    ids, _ = strong_targets(weak_tok, out, max_length=10)
    assert weak_tok.eos_token_id not in ids  # nothing trains an EOS it never wrote
    ended = weak_output(
        weak_tok, space + [weak_tok.eos_token_id], [-1.0, -2.0, -0.5], weak_tok.eos_token_id
    )
    assert ended.ended and ended.word_logprobs == pytest.approx([-3.5])  # the mass joins its EOS
