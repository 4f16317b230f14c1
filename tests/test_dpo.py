"""DPO / cDPO / IPO: losses and gradients by hand and against TRL, response log-probs, the frozen
reference, gradient accumulation, and a tiny training run that learns the preference."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from tests.tiny_lms import make_tiny_lm, word_tokenizer
from weaklift.methods.dpo import DPO, IPO, CDPOOptions, ConservativeDPO, DPOOptions, PairLogps
from weaklift.models.causal_lm import load_causal_lm
from weaklift.models.lm import PromptRule, encode_responses, response_logprobs
from weaklift.training.preference import (
    PolicyWithReference,
    PreferenceLoopConfig,
    TokenizedPairs,
    _optimizer_step,
    train_preference,
)

PROMPTS = ["the cat is", "a dog", "is the sky blue ?", "paris is the capital of"]
CHOSEN = [" big", " is small", " yes", " france"]
REJECTED = [" small dog", " is big .", " no , it is green", " germany and berlin"]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _logps(pc, pr, rc, rr, tokens=(1.0, 1.0)) -> PairLogps:
    def t(x):
        return torch.tensor([x], dtype=torch.float64, requires_grad=True)

    return PairLogps(
        t(pc), t(pr), t(rc), t(rr), torch.tensor([tokens[0]]), torch.tensor([tokens[1]])
    )


# --- the losses by hand ---------------------------------------------------------------------------


def test_dpo_loss_and_gradient_by_hand():
    logps = _logps(-2.0, -3.0, -2.5, -2.0)  # h = (−2 + 2.5) − (−3 + 2) = 1.5
    loss = DPO(DPOOptions(beta=0.5))(logps)
    loss.sum().backward()
    assert float(loss.detach()) == pytest.approx(-math.log(_sigmoid(0.75)), abs=1e-9)
    # d/dh −log σ(βh) = −β σ(−βh); h rises with the chosen policy log-prob, falls with the rejected
    assert float(logps.policy_chosen.grad) == pytest.approx(-0.5 * _sigmoid(-0.75), abs=1e-9)
    assert float(logps.policy_rejected.grad) == pytest.approx(0.5 * _sigmoid(-0.75), abs=1e-9)
    assert float(logps.reference_chosen.grad) == pytest.approx(0.5 * _sigmoid(-0.75), abs=1e-9)


def test_cdpo_loss_and_gradient_by_hand():
    logps = _logps(-2.0, -3.0, -2.5, -2.0)  # h = 1.5, βh = 0.75
    loss = ConservativeDPO(CDPOOptions(beta=0.5, epsilon=0.1))(logps)
    loss.sum().backward()
    expected = -0.9 * math.log(_sigmoid(0.75)) - 0.1 * math.log(_sigmoid(-0.75))
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-9)
    grad_h = 0.5 * (-0.9 * _sigmoid(-0.75) + 0.1 * _sigmoid(0.75))
    assert float(logps.policy_chosen.grad) == pytest.approx(grad_h, abs=1e-9)
    assert float(logps.policy_rejected.grad) == pytest.approx(-grad_h, abs=1e-9)


def test_cdpo_stops_pushing_where_dpo_keeps_going():
    """The smoothed loss is minimal at βh = log((1 − ε)/ε), not at infinity: it forgives noise."""
    options = CDPOOptions(beta=1.0, epsilon=0.1)
    at_optimum = _logps(math.log(9.0), 0.0, 0.0, 0.0)  # βh = log 9 = log(0.9 / 0.1)
    ConservativeDPO(options)(at_optimum).sum().backward()
    assert float(at_optimum.policy_chosen.grad) == pytest.approx(0.0, abs=1e-9)
    far = _logps(5.0, 0.0, 0.0, 0.0)  # past the optimum cDPO pulls back; DPO still pushes
    ConservativeDPO(options)(far).sum().backward()
    assert float(far.policy_chosen.grad) > 0
    smoothed_zero = ConservativeDPO(CDPOOptions(beta=1.0, epsilon=0.0))(far).detach()
    assert float(smoothed_zero) == pytest.approx(float(DPO(DPOOptions(beta=1.0))(far)), abs=1e-12)


def test_ipo_loss_by_hand_is_length_normalised():
    logps = _logps(-2.0, -3.0, -2.5, -2.0, tokens=(2.0, 4.0))
    loss = IPO(DPOOptions(beta=0.25))(logps)
    h_bar = (0.5 / 2) - (-1.0 / 4)  # per-token log-ratios
    assert float(loss.detach()) == pytest.approx((h_bar - 1 / (2 * 0.25)) ** 2, abs=1e-9)


# --- response log-probs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    folder = make_tiny_lm(
        tmp_path_factory.mktemp("lm"), word_tokenizer(PROMPTS + CHOSEN + REJECTED)
    )
    return load_causal_lm(str(folder), device="cpu")


def _by_hand(model, prompt: list[int], response: list[int]) -> float:
    """log p(response | prompt) from full logits of the unpadded sequence."""
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)  # (T, V)
    start = len(prompt)
    return sum(float(logp[start + i - 1, tok]) for i, tok in enumerate(response))


def test_left_padded_batch_scores_only_response_tokens(tiny_lm):
    prompts, responses = encode_responses(tiny_lm.tokenizer, PROMPTS, REJECTED, PromptRule(64), 32)
    assert prompts[0][0] == tiny_lm.tokenizer.bos_token_id
    assert all(r[-1] == tiny_lm.tokenizer.eos_token_id for r in responses)
    with torch.no_grad():
        batched, tokens = response_logprobs(
            tiny_lm.model, prompts, responses, tiny_lm.tokenizer.pad_token_id
        )
    assert tokens.tolist() == [len(r) for r in responses]
    for row, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        assert float(batched[row]) == pytest.approx(_by_hand(tiny_lm.model, p, r), abs=1e-4)


def test_empty_responses_score_zero(tiny_lm):
    with torch.no_grad():
        logps, tokens = response_logprobs(tiny_lm.model, [[2, 5], [2]], [[], []], 0)
    assert logps.tolist() == [0.0, 0.0] and tokens.tolist() == [0, 0]


def test_truncation_keeps_the_prompt_end_and_the_response_start(tiny_lm):
    tok = tiny_lm.tokenizer
    prompts, responses = encode_responses(
        tok, ["one two three one two three one two"], [" big small red"], PromptRule(3), 3
    )
    assert responses[0] == tok(" big small red", add_special_tokens=False)["input_ids"]  # no EOS
    assert prompts[0] == [tok.bos_token_id] + tok(" one two", add_special_tokens=False)["input_ids"]


def test_only_responses_that_ended_get_eos(tiny_lm):
    """A candidate cut at the decoding limit is scored and trained as written: no EOS after it."""
    tok = tiny_lm.tokenizer
    words = [tok(text, add_special_tokens=False)["input_ids"] for text in REJECTED[:2]]
    _, default = encode_responses(tok, PROMPTS[:2], REJECTED[:2], PromptRule(64), 32)
    _, flagged = encode_responses(tok, PROMPTS[:2], REJECTED[:2], PromptRule(64), 32, [True, False])
    assert default == [words[0] + [tok.eos_token_id], words[1] + [tok.eos_token_id]]
    assert flagged == [words[0] + [tok.eos_token_id], words[1]]


# --- against TRL ----------------------------------------------------------------------------------


def _perturbed_policy(model: torch.nn.Module) -> torch.nn.Module:
    policy = copy.deepcopy(model).requires_grad_(True)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy


def _trl_loss_and_grads(
    policy, reference, tokenizer, tmp_path, chosen, rejected, beta, loss_type="sigmoid"
):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = [
        {"prompt": p, "chosen": c, "rejected": r}
        for p, c, r in zip(PROMPTS, chosen, rejected, strict=True)
    ]
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        beta=beta,
        loss_type=[loss_type],
        report_to=[],
        use_cpu=True,
        bf16=False,  # TRL's default runs the reference under bf16 autocast; compare in float32
        save_strategy="no",
        per_device_train_batch_size=len(rows),
    )
    trainer = DPOTrainer(
        model=policy,
        ref_model=copy.deepcopy(reference),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, batch, False)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


@pytest.mark.parametrize("name", ["dpo", "cdpo", "ipo"])
def test_losses_match_trl_on_the_same_model_and_pairs(tiny_lm, tmp_path, name):
    """Our log-probs + loss vs TRL's DPOTrainer loss on the same policy, reference and pairs."""
    beta, eps = 0.5, 0.2
    reference = tiny_lm.model
    tok = tiny_lm.tokenizer
    if name == "dpo":
        trl_loss, trl_grads = _trl_loss_and_grads(
            _perturbed_policy(reference), reference, tok, tmp_path, CHOSEN, REJECTED, beta
        )
        ours = DPO(DPOOptions(beta=beta))
    elif name == "ipo":
        trl_loss, trl_grads = _trl_loss_and_grads(
            _perturbed_policy(reference), reference, tok, tmp_path, CHOSEN, REJECTED, beta, "ipo"
        )
        ours = IPO(DPOOptions(beta=beta))
    else:  # TRL 1.x has no cDPO loss type; cDPO = (1 − ε)·DPO(y_w ≻ y_l) + ε·DPO(y_l ≻ y_w)
        right, right_grads = _trl_loss_and_grads(
            _perturbed_policy(reference), reference, tok, tmp_path, CHOSEN, REJECTED, beta
        )
        flipped, flipped_grads = _trl_loss_and_grads(
            _perturbed_policy(reference), reference, tok, tmp_path, REJECTED, CHOSEN, beta
        )
        trl_loss = (1 - eps) * right + eps * flipped
        trl_grads = {n: (1 - eps) * g + eps * flipped_grads[n] for n, g in right_grads.items()}
        ours = ConservativeDPO(CDPOOptions(beta=beta, epsilon=eps))

    policy = PolicyWithReference(
        _perturbed_policy(reference), tok.pad_token_id, copy.deepcopy(reference)
    )
    prompts, chosen = encode_responses(tok, PROMPTS, CHOSEN, PromptRule(1024), 1024)
    _, rejected = encode_responses(tok, PROMPTS, REJECTED, PromptRule(1024), 1024)
    pairs = TokenizedPairs(prompts, chosen, rejected)
    loss = ours(policy.pair_logps(pairs, np.arange(len(PROMPTS)))).mean()
    loss.backward()
    assert float(loss.detach()) == pytest.approx(trl_loss, abs=1e-5)
    assert float(loss.detach()) != pytest.approx(math.log(2), abs=1e-3)  # policy ≠ reference
    for n, p in policy.model.named_parameters():
        torch.testing.assert_close(p.grad, trl_grads[n], atol=1e-5, rtol=1e-4)


# --- training -------------------------------------------------------------------------------------


def _pairs(tok) -> TokenizedPairs:
    prompts, chosen = encode_responses(tok, PROMPTS, CHOSEN, PromptRule(64), 32)
    _, rejected = encode_responses(tok, PROMPTS, REJECTED, PromptRule(64), 32)
    return TokenizedPairs(prompts, chosen, rejected)


def _lora(model: torch.nn.Module) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    return get_peft_model(
        copy.deepcopy(model),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_training_learns_the_preference_and_the_reference_stays_frozen(tiny_lm, mode):
    tok = tiny_lm.tokenizer
    pairs = _pairs(tok)
    rows = np.arange(len(pairs))
    start = copy.deepcopy(tiny_lm.model)
    model = _lora(start) if mode == "lora" else copy.deepcopy(start)
    reference = None if mode == "lora" else copy.deepcopy(start)  # full: the start, loaded again
    policy = PolicyWithReference(model, tok.pad_token_id, reference)
    with torch.no_grad():
        before = policy.pair_logps(pairs, rows)
    cfg = PreferenceLoopConfig(epochs=15, batch_size=4, micro_batch_size=2, lr=1e-2, seed=0)
    history = train_preference(policy, pairs, DPO(DPOOptions(beta=0.5)), cfg)
    assert len(history.loss) == 15
    assert history.loss[-1] < history.loss[0] - 0.2
    assert history.reward_accuracy[-1] == 1.0 and history.reward_margin[-1] > 0
    with torch.no_grad():
        after = policy.pair_logps(pairs, rows)
    # the reference still gives the starting model's log-probs; the policy moved
    torch.testing.assert_close(after.reference_chosen, before.policy_chosen)
    torch.testing.assert_close(after.reference_rejected, before.policy_rejected)
    assert bool((after.margin() > 0).all())
    if mode == "full":
        assert all(not p.requires_grad for p in policy.frozen.parameters())
        frozen = dict(policy.frozen.named_parameters())
        for n, p in start.named_parameters():
            assert torch.equal(frozen[n], p)


def test_gradient_accumulation_changes_nothing(tiny_lm):
    tok = tiny_lm.tokenizer
    pairs = _pairs(tok)
    grads = []
    for micro in (1, 4):
        policy = PolicyWithReference(
            _perturbed_policy(tiny_lm.model), tok.pad_token_id, copy.deepcopy(tiny_lm.model)
        )
        optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.0)
        from accelerate import Accelerator

        step = _optimizer_step(
            policy,
            pairs,
            np.arange(4),
            micro,
            ConservativeDPO(CDPOOptions(beta=0.5)),
            optimizer,
            Accelerator(cpu=True),
        )
        grads.append(({n: p.grad.clone() for n, p in policy.model.named_parameters()}, step))
    (one, step_one), (four, step_four) = grads
    assert step_one["loss"] == pytest.approx(step_four["loss"], abs=1e-6)
    for n in one:
        torch.testing.assert_close(one[n], four[n], atol=1e-6, rtol=1e-5)


# --- the real zoo weights (slow: WEAKLIFT_SLOW=1) -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_zoo_models_score_left_padded_batches_like_single_rows(model):
    """Left padding + position ids + logits_to_keep on real decoders (Gemma-3: sliding-window
    attention, soft-capped logits) give each row's unpadded log-probs."""
    lm = load_causal_lm(model, device="cpu")
    prompts = ["Human: What is the capital of France?\n\nAssistant:", "Human: Hi\n\nAssistant:"]
    replies = [" Paris.", " Hello! How can I help you today with anything at all?"]
    prompt_ids, response_ids = encode_responses(lm.tokenizer, prompts, replies, PromptRule(128), 32)
    with torch.no_grad():
        batched, _ = response_logprobs(
            lm.model, prompt_ids, response_ids, lm.tokenizer.pad_token_id
        )
    for row, (p, r) in enumerate(zip(prompt_ids, response_ids, strict=True)):
        assert float(batched[row]) == pytest.approx(_by_hand(lm.model, p, r), abs=2e-3)
