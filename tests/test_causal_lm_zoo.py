"""The zoo folders hold base-model weights; as causal LMs their heads must be the tied embeddings
(a random head would write garbage). Needs the real weights: run with WEAKLIFT_SLOW=1."""

from __future__ import annotations

import pytest

from weaklift.models.causal_lm import load_causal_lm
from weaklift.models.lm import Decoding, PromptRule, encode_prompts, generate


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_zoo_models_load_with_their_tied_head_and_know_paris(name):
    lm = load_causal_lm(name, device="cpu")
    assert lm.model.get_output_embeddings().weight is lm.model.get_input_embeddings().weight
    prompt_ids = encode_prompts(lm.tokenizer, ["The capital of France is"], PromptRule(128))
    [[best]] = generate(lm.model, lm.tokenizer, prompt_ids, Decoding(num=1, max_new_tokens=4))
    assert "Paris" in lm.tokenizer.decode(best.token_ids)
