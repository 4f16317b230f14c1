"""The generation loop: gradient accumulation changes nothing; a GT run learns its targets."""

from __future__ import annotations

import copy

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from weaklift.methods.generation import GEN_METHODS
from weaklift.models.causal_lm import TargetLogits
from weaklift.training.generation import (
    GenLoopConfig,
    TargetSequence,
    _optimizer_step,
    collate_sequences,
    train_generator,
)


def _model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    return LlamaForCausalLM(config)


BATCH = [
    [TargetSequence([1, 5, 6], [7, 8, 2], [0, 1, 2], [-0.2, -1.0, -0.1])],
    [TargetSequence([1, 9], [10, 2], [0, 1], [-0.5, -0.3])],
    [TargetSequence([1, 4, 4, 4], [11, 12, 13, 2], [0, 0, 1, 2], [-2.0, -0.4, -0.05])],
]


def test_collate_marks_the_positions_that_predict_each_target_token():
    ids, mask, positions, targets = collate_sequences([b[0] for b in BATCH[:2]], pad_id=0)
    assert ids.tolist() == [[1, 5, 6, 7, 8, 2], [1, 9, 10, 2, 0, 0]]
    assert mask.tolist() == [[1] * 6, [1, 1, 1, 1, 0, 0]]
    assert positions.tolist() == [[0, 2], [0, 3], [0, 4], [1, 1], [1, 2]]
    assert targets.labels.tolist() == [7, 8, 2, 10, 2]
    assert targets.word_index.tolist() == [0, 1, 2, 3, 4]  # words made unique over the batch


def test_gradient_accumulation_changes_nothing():
    method = GEN_METHODS["soft"]()
    cfg = GenLoopConfig(epochs=1, batch_size=3, lr=0.1)
    results = []
    for micro in (1, 3):
        model = _model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        forward = TargetLogits(model)
        loss, tokens = _optimizer_step(forward, optimizer, BATCH, method, cfg, micro, 0, 0.0)
        results.append((loss, tokens, [p.detach().clone() for p in model.parameters()]))
    (loss_a, tokens_a, params_a), (loss_b, tokens_b, params_b) = results
    assert tokens_a == tokens_b == 9
    assert abs(loss_a - loss_b) < 1e-5
    for a, b in zip(params_a, params_b, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_ground_truth_training_lowers_the_loss():
    model = _model()
    before = copy.deepcopy(model)
    gt = [[TargetSequence(b[0].prompt_ids, b[0].target_ids, b[0].word_index,
                          [0.0] * len(b[0].word_logprobs))] for b in BATCH]  # fmt: skip
    cfg = GenLoopConfig(epochs=30, batch_size=3, lr=0.05)
    history = train_generator(model, gt, GEN_METHODS["sft"](), cfg, pad_id=0)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert any(
        not torch.equal(a, b) for a, b in zip(model.parameters(), before.parameters(), strict=True)
    )
