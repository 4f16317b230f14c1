"""A tiny randomly initialised causal LM (llama with its LM head) saved as an ordinary HF folder.

Built like ``tests/tiny_models.py`` (same word-level tokenizer), but with the head, so it can score
and be trained on responses. Deterministic: same arguments, same weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tests.tiny_models import _tokenizer, _vocabulary


def make_tiny_lm(folder: Path, texts: Iterable[str] | None = None, seed: int = 0) -> Path:
    """Save a ~40k-parameter LlamaForCausalLM and its tokenizer into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocabulary(texts or [])
    tokenizer = _tokenizer(vocab, decoder=True, pad_token=True)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
