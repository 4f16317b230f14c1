"""Generation losses by hand: the soft target, each method's value and gradient, member weights."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.special import digamma, gammaln

from weaklift.config import MethodSpec
from weaklift.methods.generation import (
    GEN_METHODS,
    TokenTargets,
    build_gen_method,
    soft_token_targets,
    token_shares,
)

LOGITS = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, -0.5, 1.5, 0.3]])
LABELS = torch.tensor([1, 3])
SHARES = torch.tensor([-0.2, -1.0])


def _targets() -> TokenTargets:
    # token 0 is its own word; token 1 another word (GT-free: log-probs are the shares)
    return TokenTargets(LABELS, torch.tensor([0, 1]), SHARES.clone())


def _hand_target(z: torch.Tensor, y: int, s: float) -> torch.Tensor:
    p = torch.softmax(z, -1)
    t = (1 - math.exp(s)) * p / (1 - p[y])
    t[y] = math.exp(s)
    return t


def _loss_and_grad(name: str, progress: float = 0.0, **options):
    method = build_gen_method(MethodSpec(name=name, options=options))
    logits = LOGITS.clone().requires_grad_(True)
    loss = method.token_loss(logits, _targets(), SHARES, progress)
    loss.sum().backward()
    return loss.detach(), logits.grad


def test_soft_target_sums_to_one_and_carries_no_gradient():
    logits = LOGITS.clone().requires_grad_(True)
    target = soft_token_targets(logits, LABELS, SHARES)
    assert not target.requires_grad and target.grad_fn is None
    assert torch.allclose(target.sum(-1), torch.ones(2))
    for i in range(2):
        assert torch.allclose(target[i], _hand_target(LOGITS[i], int(LABELS[i]), float(SHARES[i])))


def test_token_shares_even_and_by_entropy():
    targets = TokenTargets(
        torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1]), torch.tensor([-3.0, -0.5])
    )
    even = token_shares(targets, torch.zeros(3, 4), "even")
    assert torch.allclose(even, torch.tensor([-1.5, -1.5, -0.5]))
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    p = torch.softmax(logits, -1)
    h = -(p * p.log()).sum(-1)
    shares = token_shares(targets, logits, "entropy")
    expected = torch.tensor([-3.0 * h[0] / (h[0] + h[1]), -3.0 * h[1] / (h[0] + h[1]), -0.5])
    assert torch.allclose(shares, expected, atol=1e-6)


def test_sft_is_label_cross_entropy():
    loss, grad = _loss_and_grad("sft")
    q = torch.softmax(LOGITS, -1)
    assert torch.allclose(loss, -torch.log(q[[0, 1], LABELS]))
    assert torch.allclose(grad, q - torch.nn.functional.one_hot(LABELS, 4).float(), atol=1e-6)


@pytest.mark.parametrize("name", ["soft", "joint", "multi_naive"])
def test_soft_is_kl_to_the_soft_target(name):
    loss, grad = _loss_and_grad(name)
    q = torch.softmax(LOGITS, -1)
    t = torch.stack([_hand_target(LOGITS[i], int(LABELS[i]), float(SHARES[i])) for i in range(2)])
    assert torch.allclose(loss, (t * (t.log() - q.log())).sum(-1), atol=1e-6)
    assert torch.allclose(grad, q - t, atol=1e-6)  # the target is a constant


def test_logconf_mixes_in_the_hardened_prediction_after_warmup():
    loss, grad = _loss_and_grad("logconf", progress=0.1, alpha=0.5, warmup=0.2)
    c = 0.25  # 0.5 · 0.1 / 0.2
    q = torch.softmax(LOGITS, -1)
    t = torch.stack([_hand_target(LOGITS[i], int(LABELS[i]), float(SHARES[i])) for i in range(2)])
    h = torch.nn.functional.one_hot(LOGITS.argmax(-1), 4).float()  # argmax 1 and 2
    target = (1 - c) * t + c * h
    assert torch.allclose(loss, -(target * q.log()).sum(-1), atol=1e-6)
    assert torch.allclose(grad, q - target, atol=1e-6)


def test_bayes_evidential_loss_by_hand():
    loss, grad = _loss_and_grad("bayes", progress=0.25, lam=0.4, anneal=0.5)
    alpha = LOGITS.double().exp() + 1
    for i in range(2):
        y = _hand_target(LOGITS[i], int(LABELS[i]), float(SHARES[i])).double()
        a = alpha[i]
        s = a.sum()
        log_loss = float((y * (s.log() - a.log())).sum())
        at = ((a - 1) * (1 - y) + 1).numpy()
        kl = (
            gammaln(at.sum()) - gammaln(4) - gammaln(at).sum()
            + ((at - 1) * (digamma(at) - digamma(at.sum()))).sum()
        )  # fmt: skip
        assert float(loss[i]) == pytest.approx(log_loss + 0.4 * 0.5 * kl / 4, rel=1e-5)  # KL / V
    # λ = 0: d/dz_v Σ_k y_k (log S − log α_k) = e^z_v / S − y_v e^z_v / α_v
    _, grad = _loss_and_grad("bayes", lam=0.0)
    e = LOGITS.exp()
    y = torch.stack([_hand_target(LOGITS[i], int(LABELS[i]), float(SHARES[i])) for i in range(2)])
    expected = e / (e + 1).sum(-1, keepdim=True) - y * e / (e + 1)
    assert torch.allclose(grad, expected, atol=1e-5)


def test_multi_naive_member_weights():
    conf = torch.tensor([0.9, 0.5, 0.7])
    uniform = GEN_METHODS["multi_naive"](GEN_METHODS["multi_naive"].Options())
    assert torch.allclose(uniform.member_weights(conf), torch.full((3,), 1 / 3))
    fixed = build_gen_method(
        MethodSpec(name="multi_naive", options={"weighting": "fixed", "weights": [2, 1, 1]})
    )
    assert torch.allclose(fixed.member_weights(conf), torch.tensor([0.5, 0.25, 0.25]))
    dynamic = build_gen_method(
        MethodSpec(name="multi_naive", options={"weighting": "dynamic", "temperature": 0.5})
    )
    assert torch.allclose(dynamic.member_weights(conf), torch.softmax(conf / 0.5, 0))


def test_every_method_declares_itself():
    for name, cls in GEN_METHODS.items():
        assert cls.name == name and cls.paper
        assert isinstance(cls.multi_weak, bool) and isinstance(cls.joint_target, bool)
