"""Tiny randomly initialised models saved as ordinary HF folders, for fast offline tests.

``make_tiny_model(folder)`` writes a ~30k-parameter llama (decoder) or bert (encoder) plus a
word-level tokenizer built locally with ``tokenizers``, so ``load_backbone(str(folder))`` exercises
the real loading path without any download. Deterministic: same arguments, same weights.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, PreTrainedTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
DEFAULT_WORDS = [
    "the", "a", "an", "is", "are", "was", "not", "and", "or", "of", "in", "on", "to", "it", "this",
    "that", "true", "false", "yes", "no", "paris", "london", "berlin", "france", "england", "germany",
    "capital", "city", "water", "sky", "blue", "green", "red", "cat", "dog", "big", "small", "one",
    "two", "three", "question", "answer", "good", "bad", ",", ".", "?", "!",
]  # fmt: skip


def make_tiny_model(
    folder: Path,
    arch: str = "llama",
    texts: Iterable[str] | None = None,
    pad_token: bool = True,
) -> Path:
    """Save a tiny random ``arch`` ("llama" or "bert") model and its tokenizer into ``folder``.

    ``pad_token=False`` leaves the tokenizer without a pad token, to test the eos fallback.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocabulary(texts or [])
    tokenizer = _tokenizer(vocab, decoder=arch == "llama", pad_token=pad_token)
    torch.manual_seed(0)
    model = _model(arch, vocab_size=len(vocab))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _vocabulary(texts: Iterable[str]) -> dict[str, int]:
    words = list(DEFAULT_WORDS)
    for text in texts:
        words.extend(re.findall(r"\w+|[^\w\s]", text.lower()))
    unique = SPECIALS + sorted(set(words) - set(SPECIALS))
    return {word: i for i, word in enumerate(unique)}


def _tokenizer(vocab: dict[str, int], decoder: bool, pad_token: bool) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    # Decoders get a BOS in front (like llama); encoders are wrapped in BOS ... EOS (like BERT).
    template = "[BOS] $A" if decoder else "[BOS] $A [EOS]"
    specials = [("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    backend.post_processor = processors.TemplateProcessing(single=template, special_tokens=specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        pad_token="[PAD]" if pad_token else None,
    )


def _model(arch: str, vocab_size: int) -> torch.nn.Module:
    shared = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    if arch == "llama":
        return LlamaModel(
            LlamaConfig(num_key_value_heads=2, bos_token_id=2, eos_token_id=3, **shared)
        )
    if arch == "bert":
        return BertModel(BertConfig(**shared))
    raise ValueError(f"unknown tiny arch {arch!r}; use llama or bert")
