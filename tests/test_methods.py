"""Each loss's value and gradient against hand computation; logconf under gradient accumulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from weaklift.config import MethodSpec
from weaklift.methods import METHODS, build_method, method_params
from weaklift.methods.hard import Hard
from weaklift.methods.logconf import (
    Logconf,
    LogconfOptions,
    class_quotas,
    confidence_weight,
    harden_balanced,
)
from weaklift.methods.product import Product
from weaklift.methods.xent import Xent
from weaklift.models.classifier import LinearHead
from weaklift.training.batches import FeatureBatcher
from weaklift.training.classifier import _optimizer_step


def _grad(method, logits, weak, progress=1.0, context=None):
    logits = logits.clone().requires_grad_(True)
    loss = method.loss(logits, weak, progress, context)
    loss.backward()
    return float(loss.detach()), logits.grad


def test_xent_value_and_gradient_by_hand():
    # softmax([2, 0]) = [e²/(e²+1), 1/(e²+1)] = [0.880797, 0.119203]
    loss, grad = _grad(Xent(), torch.tensor([[2.0, 0.0]]), torch.tensor([[0.7, 0.3]]))
    lse = math.log(math.exp(2) + 1)
    assert loss == pytest.approx(0.7 * (lse - 2) + 0.3 * lse, abs=1e-6)  # = 0.726928
    assert loss == pytest.approx(0.726928, abs=1e-6)
    # d/dz of soft CE = softmax(z) − target
    assert torch.allclose(grad, torch.tensor([[0.880797 - 0.7, 0.119203 - 0.3]]), atol=1e-6)


def test_xent_gradient_is_averaged_over_examples():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    weak = torch.tensor([[0.7, 0.3], [1.0, 0.0]])
    _, grad = _grad(Xent(), logits, weak)
    expected = (torch.softmax(logits, -1) - weak) / 2
    assert torch.allclose(grad, expected, atol=1e-6)
    assert torch.allclose(grad[1], torch.tensor([-0.25, 0.25]))


def test_hard_uses_argmax_of_weak_labels():
    loss, grad = _grad(Hard(), torch.tensor([[2.0, 0.0]]), torch.tensor([[0.4, 0.6]]))
    assert loss == pytest.approx(
        math.log(math.exp(2) + 1), abs=1e-6
    )  # −log softmax(z)_1 = 2.126928
    assert torch.allclose(grad, torch.tensor([[0.880797, 0.119203 - 1.0]]), atol=1e-6)


def test_product_target_is_normalised_product_and_detached():
    logits = torch.tensor([[math.log(3.0), 0.0]])  # student probs [0.75, 0.25]
    weak = torch.tensor([[0.4, 0.6]])
    # target ∝ [0.4·0.75, 0.6·0.25] = [0.30, 0.15] → [2/3, 1/3]
    loss, grad = _grad(Product(), logits, weak)
    assert loss == pytest.approx(-(2 / 3) * math.log(0.75) - (1 / 3) * math.log(0.25), abs=1e-6)
    # the target is a constant, so the gradient is softmax − target
    assert torch.allclose(grad, torch.tensor([[0.75 - 2 / 3, 0.25 - 1 / 3]]), atol=1e-6)


def test_confidence_weight_rises_smoothly_without_jump():
    alpha, warmup = 0.5, 0.2
    assert confidence_weight(0.0, alpha, warmup) == 0.0
    assert confidence_weight(0.1, alpha, warmup) == pytest.approx(0.25)
    assert confidence_weight(0.2, alpha, warmup) == pytest.approx(0.5)
    assert confidence_weight(0.9, alpha, warmup) == pytest.approx(0.5)
    grid = np.linspace(0, 1, 1001)
    values = np.array([confidence_weight(p, alpha, warmup) for p in grid])
    assert np.all(np.diff(values) >= 0)
    assert np.max(np.abs(np.diff(values))) < 0.01  # openai/weak-to-strong jumps 0.1 → 0.5 here


def test_binary_hardening_keeps_weak_class_balance():
    student = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    weak = torch.tensor([[0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])  # mean P(1) = 0.5
    hard = harden_balanced(student, weak)
    assert hard.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]  # the two most class-1-like


def test_binary_hardening_with_tied_student_probs_keeps_the_balance():
    """All-equal student probabilities: a quantile threshold with >= made every example class 0."""
    student = torch.full((6, 2), 0.5)
    weak = torch.tensor([[0.1, 0.9]] * 4 + [[0.9, 0.1]] * 2)  # mean P(1) = 4.0 / 6
    hard = harden_balanced(student, weak)
    assert hard.sum(0).tolist() == [2, 4]
    assert hard.sum(1).tolist() == [1] * 6


def test_hardening_a_batch_of_one_follows_its_weak_label():
    """A last batch of one: the quantile of one value is that value, so >= always gave class 0."""
    hard = harden_balanced(torch.tensor([[0.6, 0.4]]), torch.tensor([[0.2, 0.8]]))
    assert hard.tolist() == [[0, 1]]
    hard = harden_balanced(torch.tensor([[0.3, 0.5, 0.2]]), torch.tensor([[0.1, 0.1, 0.8]]))
    assert hard.tolist() == [[0, 0, 1]]


@pytest.mark.parametrize("num_classes", [2, 3, 4])
def test_hardening_counts_are_exactly_the_largest_remainder_quotas(num_classes):
    gen = torch.Generator().manual_seed(num_classes)
    for batch in [1, 2, 3, 5, 7, 16, 33]:
        student = torch.softmax(torch.randn(batch, num_classes, generator=gen), -1)
        student[: batch // 2] = student[0]  # ties between examples
        weak = torch.softmax(3 * torch.randn(batch, num_classes, generator=gen), -1)
        quotas = class_quotas(weak, batch)
        share = weak.mean(0) * batch
        assert int(quotas.sum()) == batch and bool((quotas >= 0).all())
        assert bool(((quotas - share).abs() < 1 + 1e-5).all())  # each share rounded down or up
        hard = harden_balanced(student, weak)
        assert hard.sum(0).long().tolist() == quotas.tolist()
        assert hard.sum(1).tolist() == [1.0] * batch


def test_logconf_value_and_gradient_by_hand():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]))
    weak = torch.tensor([[0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    method = Logconf(LogconfOptions(alpha=0.5, warmup=0.2))
    loss, grad = _grad(method, logits, weak, progress=0.1)  # c = 0.25
    hard = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    target = 0.75 * weak + 0.25 * hard
    expected = -(target * torch.log(torch.softmax(logits, -1))).sum(-1).mean()
    assert loss == pytest.approx(float(expected), abs=1e-6)
    assert torch.allclose(grad, (torch.softmax(logits, -1) - target) / 4, atol=1e-6)
    # example 0 by hand: target = .75·[.2,.8] + .25·[1,0] = [.4,.6]; −(.4 log .9 + .6 log .1)
    assert float(target[0, 0]) == pytest.approx(0.4)


def test_multiclass_hardening_follows_weak_class_counts():
    student = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.5, 0.1, 0.4], [0.2, 0.5, 0.3]])
    weak = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    # weak marginal = [0.25, 0.25, 0.5] → quotas 1, 1, 2 over 4 examples
    hard = harden_balanced(student, weak)
    assert hard.sum(0).tolist() == [1, 1, 2]
    assert hard.sum(1).tolist() == [1, 1, 1, 1]
    assert hard[0].tolist() == [1, 0, 0]  # the most confident pair wins its class first


class _RecordingLogconf(Logconf):
    def __init__(self):
        super().__init__(LogconfOptions(alpha=0.75, warmup=0.0))
        self.contexts: list[torch.Tensor] = []

    def loss(self, logits, weak_probs, progress, context):
        assert context is not None
        self.contexts.append(context.clone())
        return super().loss(logits, weak_probs, progress, context)


def _single_weak(n: int) -> torch.Tensor:
    return torch.softmax(torch.randn(n, 2) * 2, -1)  # (N, K)


def _one_step(micro_size: int, method, make_weak=_single_weak) -> torch.Tensor:
    """Gradient of one optimizer step over 16 examples (SGD, lr 1), cut into micro-batches."""
    torch.manual_seed(0)
    features = torch.randn(16, 5).numpy()
    weak = make_weak(16)
    head = LinearHead(5, 2)
    optimizer = torch.optim.SGD(head.parameters(), lr=1.0)
    before = head.linear.weight.detach().clone()
    _optimizer_step(
        head,
        head,  # the bare model (no DDP wrapper in one process)
        optimizer,
        Accelerator(cpu=True),
        FeatureBatcher(features),
        weak,
        np.arange(16),
        micro_size,
        method,
        0.5,
        torch.device("cpu"),
    )
    return before - head.linear.weight.detach()


def test_logconf_threshold_under_accumulation_equals_unsplit_batch():
    whole, split = _RecordingLogconf(), _RecordingLogconf()
    grad_whole = _one_step(16, whole)
    grad_split = _one_step(4, split)
    assert len(whole.contexts) == 1 and len(split.contexts) == 4
    assert torch.equal(torch.cat(split.contexts), whole.contexts[0])
    assert torch.allclose(grad_split, grad_whole, atol=1e-6)


def test_per_micro_batch_threshold_would_differ():
    """Control: hardening each micro-batch on its own gives other targets, so the test above can fail."""
    torch.manual_seed(0)
    features = torch.randn(16, 5)
    weak = torch.softmax(torch.randn(16, 2) * 2, -1)
    head = LinearHead(5, 2)
    probs = torch.softmax(head(features), -1).detach()
    whole = harden_balanced(probs, weak)
    per_micro = torch.cat(
        [harden_balanced(probs[i : i + 4], weak[i : i + 4]) for i in range(0, 16, 4)]
    )
    assert not torch.equal(whole, per_micro)


class _DropoutHead(torch.nn.Module):
    """A probe head with heavy dropout, so a train-mode pass differs from an eval-mode pass."""

    def __init__(self):
        super().__init__()
        self.dropout = torch.nn.Dropout(0.7)
        self.linear = torch.nn.Linear(5, 2)

    def forward(self, features):
        return self.linear(self.dropout(features))


@pytest.mark.parametrize("micro_size", [16, 4])
def test_batch_context_comes_from_an_eval_mode_pass(micro_size):
    """The hardened targets are the student's own eval-mode predictions, not a dropout sample."""
    torch.manual_seed(0)
    features = torch.randn(16, 5) * 3
    weak = torch.softmax(torch.randn(16, 2) * 2, -1)
    head = _DropoutHead()
    head.train()
    with torch.no_grad():
        head.eval()
        expected = harden_balanced(torch.softmax(head(features), -1), weak)
        head.train()
    method = _RecordingLogconf()
    _optimizer_step(
        head,
        head,  # the bare model (no DDP wrapper in one process)
        torch.optim.SGD(head.parameters(), lr=0.0),
        Accelerator(cpu=True),
        FeatureBatcher(features.numpy()),
        weak,
        np.arange(16),
        micro_size,
        method,
        0.5,
        torch.device("cpu"),
    )
    assert torch.equal(torch.cat(method.contexts), expected)
    assert head.training  # the loop's train mode is restored


def test_method_versions_enter_the_cache_view(monkeypatch):
    """Bumping one method's version changes its key view and no other method's."""
    specs = {name: MethodSpec(name=name) for name in METHODS}
    before = {name: method_params(spec) for name, spec in specs.items()}
    monkeypatch.setattr(METHODS["logconf"], "version", METHODS["logconf"].version + 1)
    after = {name: method_params(spec) for name, spec in specs.items()}
    assert [name for name in METHODS if before[name] != after[name]] == ["logconf"]
    for name in ("logconf", "joint", "bayes"):  # they call logconf's hardening
        assert "hardening" in method_params(specs[name])["shared"]
    assert method_params(None)["name"] == "gt_xent" and "version" in method_params(None)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_contract(name):
    """Every registered method: finite scalar loss, gradient on logits, accepts its default options."""
    method = build_method(MethodSpec(name=name))
    for k in (2, 3):
        torch.manual_seed(k)
        logits = torch.randn(8, k, requires_grad=True)
        weak_shape = (8, 3, k) if method.multi_weak else (8, k)  # multi-weak: 3 members
        weak = torch.softmax(torch.randn(*weak_shape), -1)
        context = method.batch_context(torch.softmax(logits.detach(), -1), weak, 0.5)
        loss = method.loss(logits, weak, 0.5, context)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        assert logits.grad is not None and torch.isfinite(logits.grad).all()
        assert method.paper and method.name == name
        assert isinstance(type(method).version, int) and type(method).version >= 1
