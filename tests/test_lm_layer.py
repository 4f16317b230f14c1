"""The one LM layer: one prompt rule for SFT, decoding, candidates, judges and DPO; loading in the
config's compute dtype (and its key), full finetuning on float32 master weights; LoRA adapters in float32 on the one base (no copy); the DPO
loop's gradient clipping and linear-decay schedule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.tiny_lms import make_tiny_lm, word_tokenizer
from weaklift.alignment import WeakOutput
from weaklift.config import ModelConfig, PreferenceConfig
from weaklift.config_files import load_config
from weaklift.methods.dpo import DPO, DPOOptions
from weaklift.methods.generation import GEN_METHODS
from weaklift.models.adapters import with_adapters
from weaklift.models.causal_lm import LMSource, load_causal_lm, weights_dtype
from weaklift.models.lm import PromptRule, encode_prompts, encode_responses, response_logprobs
from weaklift.models.loading import weights_key
from weaklift.stages.generation import to_sequences
from weaklift.stages.preference_opt import Pairs, tokenize_pairs
from weaklift.training.generation import GenLoopConfig, TargetSequence, train_generator
from weaklift.training.preference import (
    PolicyWithReference,
    PreferenceLoopConfig,
    TokenizedPairs,
    train_preference,
)

WORDS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "yes",
    "no",
    "answer",
    ":",
]
PROMPTS = ["one two three", "four five six seven", "eight nine", "ten one two three four"]
CHOSEN, REJECTED = [" yes"] * 4, [" no"] * 4
BF16 = torch.bfloat16


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_tiny_lm(tmp_path_factory.mktemp("lm"), word_tokenizer([" ".join(WORDS)]))


@pytest.fixture(scope="module")
def tok(folder):
    return load_causal_lm(str(folder), "float32", device="cpu").tokenizer


# --- one prompt rule ------------------------------------------------------------------------------


def test_sft_decoding_candidates_and_dpo_see_the_same_context_for_a_long_prompt(tok):
    """Defect 6: SFT kept a long prompt's START (128 tokens) and DPO its END (max_length minus the
    response); now one rule from the config (generation.max_prompt_length / prompt_keep) for all."""
    slurp = ["task.name=slurp", "methods=[sft]", "weak.mode=lora", "strong.mode=lora"]
    cfg = load_config(None, [*slurp, "generation.max_prompt_length=6"])
    long_prompt = " ".join(WORDS[:10]) + " answer :"
    ctx = SimpleNamespace(cfg=cfg)
    [sft] = to_sequences(tok, long_prompt, [WeakOutput(["yes"], [0.0, 0.0], True)], ctx)
    dpo = tokenize_pairs(
        tok, Pairs([long_prompt], [" yes"], [" no"], key="k"), PreferenceConfig(), _rule(cfg)
    )
    [decoded] = encode_prompts(tok, [long_prompt], _rule(cfg))  # decode, candidates, judges
    assert sft.prompt_ids == dpo.prompt_ids[0] == decoded
    # the BOS and the prompt's end ("eight nine ten answer :") are kept, 6 tokens in all
    expected = [tok.bos_token_id] + tok(" eight nine ten answer :", add_special_tokens=False)[
        "input_ids"
    ]
    assert sft.prompt_ids == expected and len(expected) == 6


def _rule(cfg) -> PromptRule:
    return PromptRule.from_config(cfg.generation)


def test_prompt_rule_can_keep_the_start_and_never_leaves_a_prompt_empty(tok):
    ids = tok(" one two three four", add_special_tokens=False)["input_ids"]
    [start] = encode_prompts(tok, ["one two three four"], PromptRule(3, "start"))
    assert start == [tok.bos_token_id] + ids[:2]
    [only_bos] = encode_prompts(tok, ["one two"], PromptRule(1))
    assert only_bos == [tok.bos_token_id]


# --- compute dtype --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_weights_load_in_the_configured_dtype_and_adapters_stay_float32(folder, dtype):
    lm = load_causal_lm(str(folder), dtype, device="cpu")
    assert {p.dtype for p in lm.model.parameters()} == {getattr(torch, dtype)}
    base_params = {id(p) for p in lm.model.parameters()}
    torch.manual_seed(0)
    model = with_adapters(lm.model, ModelConfig(model=str(folder), mode="lora").lora, "CAUSAL_LM")
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.float32}
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    assert frozen == base_params  # the adapters sit on the one loaded base: nothing copied
    prompts, responses = encode_responses(lm.tokenizer, PROMPTS, CHOSEN, PromptRule(16), 4)
    logps, _ = response_logprobs(model, prompts, responses, lm.tokenizer.pad_token_id)
    assert logps.dtype == torch.float32 and bool(torch.isfinite(logps).all())
    logps.sum().backward()  # the loss is float32; gradients reach the float32 adapters
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in trainable)


def test_cache_keys_carry_the_resolved_dtype(folder):
    assert weights_key(str(folder), "float32") != weights_key(str(folder), "bfloat16")
    assert weights_key(str(folder), "auto")["dtype"] == "float32"  # tests resolve auto to float32
    assert LMSource.from_model(str(folder), "float32").key == LMSource.from_model(str(folder)).key
    cfg = ModelConfig(model=str(folder), dtype="bfloat16")
    assert LMSource.from_config(cfg).key != LMSource.from_model(str(folder), "float32").key


def _moved_share(model, start: dict[str, torch.Tensor]) -> float:
    """The share of the decoder layers' linear weights that training changed."""
    names = [
        n for n, _ in model.named_parameters() if ".layers." in n and n.endswith("proj.weight")
    ]
    params = dict(model.named_parameters())
    moved = sum(int((params[n] != start[n]).sum()) for n in names)
    return moved / sum(start[n].numel() for n in names)


def _train_full(folder, loop: str, weights: str):
    """One AdamW step at lr 1e-6 of a full causal LM whose weights are in ``weights``, each
    forward in bf16; returns the model, its starting weights and the dtypes its linears gave."""
    lm = load_causal_lm(str(folder), weights, device="cpu")
    lm.model.requires_grad_(True)
    start = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    seen: set[torch.dtype] = set()
    linear = lm.model.model.layers[0].mlp.up_proj
    linear.register_forward_hook(lambda mod, args, out: seen.add(out.dtype))
    prompts, chosen = encode_responses(lm.tokenizer, PROMPTS, CHOSEN, PromptRule(16), 4)
    if loop == "generation":
        examples = [
            [TargetSequence(p, c, list(range(len(c))), [0.0] * len(c))]
            for p, c in zip(prompts, chosen, strict=True)
        ]
        cfg = GenLoopConfig(epochs=1, batch_size=len(examples), lr=1e-6)
        train_generator(lm.model, examples, GEN_METHODS["sft"](), cfg, 0, compute_dtype=BF16)
    else:
        reference = load_causal_lm(str(folder), "bfloat16", device="cpu").model
        policy = PolicyWithReference(lm.model, lm.tokenizer.pad_token_id, reference, BF16)
        cfg = PreferenceLoopConfig(epochs=1, batch_size=len(PROMPTS), lr=1e-6)
        train_preference(policy, _pairs(lm.tokenizer), DPO(DPOOptions(beta=0.5)), cfg)
    return lm.model, start, seen


@pytest.mark.parametrize("loop", ["generation", "preference"])
def test_full_finetuning_keeps_float32_master_weights_so_small_updates_land(folder, loop):
    """AdamW's first step moves a weight by ~lr: at 1e-6 that is below bf16's resolution for any
    weight above ~3e-4, so bf16 weights would barely move; float32 master weights all do, while
    the forward still multiplies in bf16 (autocast)."""
    model, start, seen = _train_full(folder, loop, "float32")
    assert {p.dtype for p in model.parameters()} == {torch.float32} and seen == {BF16}
    assert _moved_share(model, start) > 0.9
    bf16_model, bf16_start, _ = _train_full(folder, loop, "bfloat16")
    assert _moved_share(bf16_model, bf16_start) < 0.1  # what weaklift did before


def test_full_finetuning_loads_float32_weights_and_lora_the_compute_dtype(folder):
    full = ModelConfig(model=str(folder), mode="full", dtype="bfloat16")
    assert (
        weights_dtype(full) == "float32"
        and weights_dtype(full.model_copy(update={"mode": "lora"})) is None
    )
    source = LMSource.from_config(full)
    assert next(source.load().model.parameters()).dtype == BF16  # decoding, scoring, the reference
    assert next(source.load("float32").model.parameters()).dtype == torch.float32


# --- the DPO loop ---------------------------------------------------------------------------------


def _pairs(tokenizer) -> TokenizedPairs:
    rule = PromptRule(16)
    prompts, chosen = encode_responses(tokenizer, PROMPTS, CHOSEN, rule, 4)
    _, rejected = encode_responses(tokenizer, PROMPTS, REJECTED, rule, 4)
    return TokenizedPairs(prompts, chosen, rejected)


def test_lora_reference_is_the_same_base_with_adapters_off(folder):
    lm = load_causal_lm(str(folder), "float32", device="cpu")
    pairs = _pairs(lm.tokenizer)
    rows = np.arange(len(pairs))
    with torch.no_grad():
        start, _ = response_logprobs(
            lm.model, pairs.prompt_ids, pairs.chosen_ids, lm.tokenizer.pad_token_id
        )
    base_weights = {id(p): p for p in lm.model.parameters()}
    torch.manual_seed(0)
    model = with_adapters(lm.model, ModelConfig(model=str(folder), mode="lora").lora, "CAUSAL_LM")
    policy = PolicyWithReference(model, lm.tokenizer.pad_token_id)
    assert policy.frozen is None  # no second model
    cfg = PreferenceLoopConfig(epochs=3, batch_size=4, lr=5e-2, seed=0)
    train_preference(policy, pairs, DPO(DPOOptions(beta=0.5)), cfg)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert all(id(p) in base_weights for p in frozen) and len(frozen) == len(base_weights)
    with torch.no_grad():
        after = policy.pair_logps(pairs, rows)
    torch.testing.assert_close(after.reference_chosen, start)  # the pristine start
    assert not torch.allclose(after.policy_chosen, start)  # while the policy moved


def test_full_policy_needs_its_reference(folder):
    lm = load_causal_lm(str(folder), "float32", device="cpu")
    with pytest.raises(Exception, match="reference"):
        PolicyWithReference(lm.model, lm.tokenizer.pad_token_id)


def test_dpo_clips_the_gradient_and_decays_the_lr_to_zero(folder):
    lm = load_causal_lm(str(folder), "float32", device="cpu")
    reference = load_causal_lm(str(folder), "float32", device="cpu").model
    policy = PolicyWithReference(
        lm.model.requires_grad_(True), lm.tokenizer.pad_token_id, reference
    )
    pairs = _pairs(lm.tokenizer)
    # a huge lr and a sharp loss: unclipped gradient norms well above 1
    cfg = PreferenceLoopConfig(epochs=4, batch_size=2, lr=10.0, seed=0)
    clipped_norms = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        clipped_norms.append(float(torch.nn.utils.get_total_norm(grads)))
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = step
    try:
        history = train_preference(policy, pairs, DPO(DPOOptions(beta=50.0)), cfg)
    finally:
        torch.optim.AdamW.step = original
    steps = 4 * 2
    assert len(history.lr) == steps and len(clipped_norms) == steps
    assert max(history.grad_norm) > 1.0  # there was something to clip
    assert max(clipped_norms) <= 1.0 + 1e-4  # and the optimizer only ever saw norm <= 1
    assert history.lr[0] == pytest.approx(10.0)
    assert history.lr == sorted(history.lr, reverse=True)  # linear decay ...
    assert history.lr[-1] == pytest.approx(10.0 / steps)  # ... whose next step would be lr 0
