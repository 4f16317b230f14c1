"""Tiny random causal LMs with two DIFFERENT fast tokenizers, built in the test, for generation.

- ``bpe_tokenizer``: byte-level BPE (like GPT-2 / SmolLM2): a word's leading space is part of its
  token (``Ġword``), offsets include it.
- ``metaspace_tokenizer``: WordPiece-free unigram-like BPE behind a Metaspace pre-tokenizer (like
  SentencePiece / Gemma: ``▁word``), with a different vocabulary size and merges.

- ``word_tokenizer``: the word-level tokenizer of ``tests/tiny_models.py`` (one token per word, BOS
  in front), for tests that count a response's tokens by hand.

``make_tiny_lm(folder, tokenizer)`` saves a ~40k-parameter ``LlamaForCausalLM`` with tied
embeddings plus the tokenizer, so ``load_causal_lm(str(folder))`` runs the real loading path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tests.tiny_models import _tokenizer, _vocabulary

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def bpe_tokenizer(texts: list[str], vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """Byte-level BPE: ``" dollar"`` → ``Ġdollar`` with offsets covering the space."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(texts, trainer)
    return _wrap(backend)


def metaspace_tokenizer(texts: list[str], vocab_size: int = 120) -> PreTrainedTokenizerFast:
    """Metaspace BPE (SentencePiece-like): ``" dollar"`` → ``▁dol`` ``lar``, a smaller vocabulary."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS)
    backend.train_from_iterator(texts, trainer)
    return _wrap(backend)


def word_tokenizer(texts: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Word-level, lowercased, ``[BOS]`` in front, ``[PAD]`` set: every word of ``texts`` a token."""
    return _tokenizer(_vocabulary(texts), decoder=True, pad_token=True)


def make_tiny_lm(folder: Path, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> Path:
    """Save a tiny random LlamaForCausalLM (tied head) and ``tokenizer`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=256,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
        )
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
