"""From weak words to strong tokens, by exact character offsets (no suffix matching).

1. A weak output (token ids + per-token log-probs) is decoded to text and split into words at
   whitespace. Each weak token belongs to the word holding its first non-space character (a token
   of whitespace only joins the next word), so a word's log-prob is the sum of its tokens' log-probs
   and the words' log-probs sum to the sequence's. A final EOS is a word of its own.
2. The words are re-tokenised by the strong tokenizer (``" " + " ".join(words)``, the same form
   targets take in training) with ``return_offsets_mapping``; each strong token is mapped to a word
   by the same rule. ``weaklift.methods.generation.token_shares`` then shares each word's log-prob
   over its strong tokens.

Both steps need fast tokenizers (offset mappings); ``check_offsets`` rejects others up front.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from weaklift.errors import WeakliftError

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class WeakOutput:
    """A weak output as words: ``word_logprobs`` has one entry per word, plus one for EOS if ended
    (an output of whitespace only cut at the decoding limit: one entry, its mass, and no EOS)."""

    words: list[str]
    word_logprobs: list[float]
    ended: bool

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def to_json(self) -> dict:
        return {"words": self.words, "word_logprobs": self.word_logprobs, "ended": self.ended}

    @classmethod
    def from_json(cls, obj: dict) -> WeakOutput:
        return cls(list(obj["words"]), [float(x) for x in obj["word_logprobs"]], bool(obj["ended"]))

    @classmethod
    def ground_truth(cls, text: str) -> WeakOutput:
        """A reference target: every word certain (log-prob 0), EOS included."""
        words = text.split()
        return cls(words, [0.0] * (len(words) + 1), True)


def check_offsets(tokenizer: Any, model: str) -> None:
    """Generation needs offset mappings; slow (Python) tokenizers have none."""
    if not getattr(tokenizer, "is_fast", False):
        raise WeakliftError(
            f"model {model}: its tokenizer is slow (no offset mappings) and weak words cannot be "
            "aligned to strong tokens",
            "use a model with a fast (tokenizers) tokenizer.json",
        )


def word_of_tokens(text: str, spans: list[tuple[int, int]]) -> list[int]:
    """Word index of each token span over ``text``: the word of its first non-space character;
    whitespace belongs to the word after it (to the last word at the end of the text)."""
    words = [m.span() for m in _WORD.finditer(text)]
    owner, w = [], 0
    for i in range(len(text)):  # owner[i]: the word holding char i, or the next one
        while w < len(words) - 1 and words[w][1] <= i:
            w += 1
        owner.append(w)
    result = []
    for start, end in spans:
        chars = [i for i in range(start, min(end, len(text))) if not text[i].isspace()]
        first = chars[0] if chars else min(start, len(text) - 1)
        result.append(owner[first] if owner else 0)
    return result


def token_spans(tokenizer: Any, ids: list[int], text: str) -> list[tuple[int, int]]:
    """Character span of each token of ``ids`` in ``text`` (= their decoding).

    When ``ids`` is the tokenizer's own tokenisation of ``text`` its offset mapping is exact; beam
    search can emit another tokenisation, and then spans come from decoding growing prefixes.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(encoded["input_ids"]) == list(ids):
        return [tuple(span) for span in encoded["offset_mapping"]]
    spans, previous = [], 0
    for k in range(1, len(ids) + 1):
        end = len(tokenizer.decode(ids[:k], skip_special_tokens=True))
        end = min(max(end, previous), len(text))
        spans.append((previous, end))
        previous = end
    return spans


def weak_output(
    tokenizer: Any, token_ids: list[int], token_logprobs: list[float], eos_id: int
) -> WeakOutput:
    """Words of a generated output and each word's log-prob (the sum of its tokens')."""
    ended = bool(token_ids) and token_ids[-1] == eos_id
    body = token_ids[:-1] if ended else token_ids
    body_logprobs = token_logprobs[: len(body)]
    text = tokenizer.decode(body, skip_special_tokens=True)
    words = text.split()
    sums = [0.0] * len(words)
    if words:
        for word, logprob in zip(
            word_of_tokens(text, token_spans(tokenizer, body, text)), body_logprobs, strict=True
        ):
            sums[word] += float(logprob)
    elif body_logprobs:  # whitespace only: its mass joins the EOS if one was written, else it
        sums = [float(sum(body_logprobs))] if not ended else []  # stays alone (never an EOS)
    eos = [float(token_logprobs[-1]) + (sum(body_logprobs) if not words else 0.0)] if ended else []
    return WeakOutput(words, sums + eos, ended)


def target_text(text: str) -> str:
    """The form every generation target is trained in: its words, space-joined, after one space."""
    words = text.split()
    return " " + " ".join(words) if words else ""


def strong_targets(
    tokenizer: Any, output: WeakOutput, max_length: int
) -> tuple[list[int], list[int]]:
    """Strong token ids of an output (" " + words, then EOS if it ended) and each one's word index
    into ``output.word_logprobs``; truncated to ``max_length`` tokens."""
    text = target_text(output.text)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    words = word_of_tokens(text, [tuple(s) for s in encoded["offset_mapping"]]) if ids else []
    if not output.words:
        ids, words = [], []
    if output.ended:
        ids.append(tokenizer.eos_token_id)
        words.append(len(output.words))
    return ids[:max_length], words[:max_length]
