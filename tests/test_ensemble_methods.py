"""Multi-weak methods (Cui et al. 2024): combinations, agreement weights, evidential loss."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.special import digamma

from tests.test_methods import _grad, _one_step
from weaklift.methods.base import soft_cross_entropy
from weaklift.methods.bayes import (
    Bayes,
    BayesOptions,
    evidential_log_loss,
    kl_anneal,
    kl_to_uniform_dirichlet,
)
from weaklift.methods.ensemble import (
    combine,
    dirichlet_precision,
    dirichlet_uncertainty,
    dynamic_member_weights,
    example_weights,
)
from weaklift.methods.joint import Joint, JointOptions
from weaklift.methods.logconf import confidence_weight, harden_balanced
from weaklift.methods.multi_naive import MultiNaive, MultiNaiveOptions

# three members, three classes: argmaxes 0, 1, 0 → the vote is class 0
P1, P2, P3 = [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.2, 0.3]
MEMBERS = torch.tensor([[P1, P2, P3]])  # (1, 3, 3)
AGREE = [[0.9, 0.1]] * 3  # full agreement
DISAGREE = [[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]]  # mean [0.5, 0.5]


# --- combinations -------------------------------------------------------------------------------


def test_mean_combination_by_hand():
    assert combine(MEMBERS, "mean")[0].tolist() == pytest.approx([1.3 / 3, 1.0 / 3, 0.7 / 3])


def test_vote_majority_and_three_way_tie():
    tie = torch.tensor([[P1, P2, [0.1, 0.3, 0.6]]])  # argmaxes 0, 1, 2
    assert combine(MEMBERS, "vote")[0].tolist() == [1.0, 0.0, 0.0]
    assert combine(tie, "vote")[0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    two_way = torch.tensor([[[0.8, 0.2], [0.3, 0.7]]])  # one vote each
    assert combine(two_way, "vote")[0].tolist() == [0.5, 0.5]


def test_logpool_is_confidence_weighted_geometric_pool():
    # confidences (max prob, one example) 0.6, 0.5, 0.5 → weights 0.375, 0.3125, 0.3125
    w = [0.6 / 1.6, 0.5 / 1.6, 0.5 / 1.6]
    unnorm = [P1[k] ** w[0] * P2[k] ** w[1] * P3[k] ** w[2] for k in range(3)]
    expected = [u / sum(unnorm) for u in unnorm]
    pooled = combine(MEMBERS, "logpool")[0]
    assert pooled.tolist() == pytest.approx(expected, abs=1e-6)
    assert pooled.tolist() == pytest.approx([0.441444, 0.340399, 0.218157], abs=1e-6)
    # given weights override the confidences; a hard zero is clamped, not −inf
    uniform = combine(MEMBERS, "logpool", torch.full((3,), 1 / 3))[0]
    geo = [(P1[k] * P2[k] * P3[k]) ** (1 / 3) for k in range(3)]
    assert uniform.tolist() == pytest.approx([g / sum(geo) for g in geo], abs=1e-6)
    assert torch.isfinite(combine(torch.tensor([[[1.0, 0.0], [0.5, 0.5]]]), "logpool")).all()


def test_dynamic_member_weights_softmax_of_weak_side_accuracy():
    w = dynamic_member_weights([0.55, 0.5, 0.55], temperature=0.1)
    e = [math.exp(5.5), math.exp(5.0), math.exp(5.5)]
    assert w.tolist() == pytest.approx([x / sum(e) for x in e], abs=1e-6)


def test_dynamic_weights_reward_members_that_are_right_not_merely_confident():
    """Regression: weights came from each member's confidence, so a sure but wrong member won."""
    confident_wrong, unsure_right = [0.99, 0.01], [0.4, 0.6]
    members = torch.tensor([[confident_wrong, unsure_right]] * 4)  # (4, 2, 2)
    method = MultiNaive(
        MultiNaiveOptions(weights="dynamic", temperature=0.1, member_accuracy=[0.3, 0.9])
    )
    w = method.member_weights(members)
    assert w[1] > 0.99 and w.tolist() == pytest.approx(
        torch.softmax(torch.tensor([3.0, 9.0]), 0).tolist(), abs=1e-6
    )
    with pytest.raises(ValueError, match="member_accuracy"):
        MultiNaive(MultiNaiveOptions(weights="dynamic")).member_weights(members)


# --- agreement: Dirichlet fit and example weights ---------------------------------------------


def test_dirichlet_precision_by_hand():
    s = dirichlet_precision(torch.tensor([AGREE, DISAGREE]))
    assert float(s[0]) == pytest.approx(1e4)  # zero variance = full agreement
    # μ = [.5, .5], v_k = (.16 + .16 + 0)/3; s = μ(1 − μ)/v − 1 = .25/(.32/3) − 1
    assert float(s[1]) == pytest.approx(0.25 / (0.32 / 3) - 1, rel=1e-5)  # = 1.34375
    u = dirichlet_uncertainty(torch.tensor([AGREE, DISAGREE]))
    assert float(u[0]) == pytest.approx(2 / (1e4 + 2))
    assert float(u[1]) == pytest.approx(2 / 3.34375, rel=1e-5)
    one_hot_split = dirichlet_uncertainty(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    assert float(one_hot_split[0]) == pytest.approx(1.0, abs=1e-5)  # s = 0: total uncertainty


def test_dirichlet_precision_ignores_unsupported_classes():
    # class 2 has zero variance; a per-class ratio would call this full agreement
    members = torch.tensor([[[0.9, 0.1, 0.0], [0.1, 0.9, 0.0]]])
    assert float(dirichlet_precision(members)[0]) == pytest.approx(0.5 / 0.32 - 1, rel=1e-5)


def test_example_weights_rank_agreement_and_have_mean_one():
    members = torch.tensor([AGREE, DISAGREE])
    # entropy: agree → 1 − H(.9, .1)/log 2 = 0.531004; disagree → mean [.5, .5] → 0
    assert example_weights(members, "entropy").tolist() == pytest.approx([2.0, 0.0], abs=1e-6)
    torch.manual_seed(0)
    mixed = torch.cat([members, torch.softmax(torch.randn(6, 3, 2) * 3, -1)])
    for how in ("entropy", "dirichlet"):
        w = example_weights(mixed, how)
        assert float(w.mean()) == pytest.approx(1.0, abs=1e-6)
        assert w[0] > w[1]
    assert example_weights(mixed, "none").tolist() == [1.0] * 8


# --- multi_naive ------------------------------------------------------------------------------


def test_multi_naive_uniform_is_mean_of_member_cross_entropies():
    torch.manual_seed(1)
    logits, members = torch.randn(4, 3), torch.softmax(torch.randn(4, 3, 3), -1)
    loss, grad = _grad(MultiNaive(), logits, members)
    per_member = [float(soft_cross_entropy(logits, members[:, m])) for m in range(3)]
    assert loss == pytest.approx(sum(per_member) / 3, abs=1e-6)
    assert torch.allclose(grad, (torch.softmax(logits, -1) - members.mean(1)) / 4, atol=1e-6)


def test_multi_naive_fixed_weights_are_normalised_and_checked():
    torch.manual_seed(2)
    logits, members = torch.randn(4, 2), torch.softmax(torch.randn(4, 2, 2), -1)
    loss, _ = _grad(MultiNaive(MultiNaiveOptions(weights=[1.0, 3.0])), logits, members)
    expected = 0.25 * soft_cross_entropy(logits, members[:, 0]) + 0.75 * soft_cross_entropy(
        logits, members[:, 1]
    )
    assert loss == pytest.approx(float(expected), abs=1e-6)
    wrong = MultiNaive(MultiNaiveOptions(weights=[1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"methods\.\*\.weights.*3 weights.*2 members"):
        wrong.loss(logits, members, 0.5, None)
    with pytest.raises(ValueError):
        MultiNaiveOptions(weights=[0.0, 0.0])
    with pytest.raises(ValueError):
        MultiNaiveOptions(weight="uniform")  # extra keys are rejected


def test_multi_weak_methods_reject_single_weak_labels():
    with pytest.raises(ValueError, match="members"):
        MultiNaive().loss(torch.randn(4, 2), torch.softmax(torch.randn(4, 2), -1), 0.5, None)


# --- joint --------------------------------------------------------------------------------------


def test_joint_logconf_target_by_hand():
    torch.manual_seed(3)
    logits, members = torch.randn(6, 2), torch.softmax(torch.randn(6, 3, 2) * 2, -1)
    method = Joint(JointOptions(base="logconf", alpha=0.5, warmup=0.2))
    assert method.needs_batch_context and not Joint().needs_batch_context
    loss, _ = _grad(method, logits, members, progress=0.1)  # c = 0.25
    y = members.mean(1)
    target = 0.75 * y + 0.25 * harden_balanced(torch.softmax(logits, -1), y)
    assert confidence_weight(0.1, 0.5, 0.2) == pytest.approx(0.25)
    assert loss == pytest.approx(float(soft_cross_entropy(logits, target)), abs=1e-6)


def test_joint_logconf_context_sliced_into_micro_batches_equals_whole_batch():
    torch.manual_seed(4)
    logits, members = torch.randn(8, 3), torch.softmax(torch.randn(8, 3, 3) * 2, -1)
    method = Joint(
        JointOptions(base="logconf", combine="logpool", weighting="dirichlet", warmup=0.0)
    )
    whole_loss, whole_grad = _grad(method, logits, members, progress=0.5)
    context = method.batch_context(torch.softmax(logits, -1), members, 0.5)  # (8, 1 + M + K)
    assert context.shape == (8, 1 + 3 + 3)
    z = logits.clone().requires_grad_(True)
    split = sum(
        method.loss(z[i : i + 4], members[i : i + 4], 0.5, context[i : i + 4]) / 2 for i in (0, 4)
    )
    split.backward()
    assert float(split.detach()) == pytest.approx(whole_loss, abs=1e-6)
    assert torch.allclose(z.grad, whole_grad, atol=1e-6)
    # control: each micro-batch on its own (own threshold, pool weights, normalisation) differs
    alone = sum(
        float(method.loss(logits[i : i + 4], members[i : i + 4], 0.5, None)) / 2 for i in (0, 4)
    )
    assert alone != pytest.approx(whole_loss, abs=1e-4)


def _members(n: int) -> torch.Tensor:
    return torch.softmax(torch.randn(n, 3, 2) * 2, -1)  # (N, M, K)


@pytest.mark.parametrize(
    "method",
    [
        Joint(JointOptions(base="logconf", combine="logpool", weighting="entropy")),
        Bayes(BayesOptions(aux_alpha=0.5, weighting="dirichlet")),
        MultiNaive(
            MultiNaiveOptions(
                weights="dynamic", weighting="entropy", member_accuracy=[0.6, 0.7, 0.8]
            )
        ),
    ],
    ids=["joint", "bayes", "multi_naive"],
)
def test_training_step_under_accumulation_equals_unsplit_batch(method):
    assert torch.allclose(
        _one_step(4, method, _members), _one_step(16, method, _members), atol=1e-6
    )


# --- bayes (evidential) -----------------------------------------------------------------------


def test_evidential_log_loss_and_kl_by_hand():
    alpha, y = torch.tensor([[3.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    assert float(evidential_log_loss(alpha, y)[0]) == pytest.approx(
        math.log(4) - math.log(3), abs=1e-6
    )
    # KL(Dir(1,2) ‖ Dir(1,1)) = lgamma(3) − lgamma(2) − lgamma(1) − lgamma(2) + 1·(ψ(2) − ψ(3))
    by_hand = math.lgamma(3) - 2 * math.lgamma(2) - math.lgamma(1) + (digamma(2) - digamma(3))
    assert by_hand == pytest.approx(math.log(2) - 0.5)  # Beta(1,2): log 2 + E log(1 − x)
    assert float(kl_to_uniform_dirichlet(torch.tensor([[1.0, 2.0]]))[0]) == pytest.approx(
        by_hand, abs=1e-6
    )
    assert float(kl_to_uniform_dirichlet(torch.ones(1, 3))[0]) == pytest.approx(0.0, abs=1e-6)


def test_kl_anneal_schedule():
    assert kl_anneal(0.0, 0.5) == 0.0
    assert kl_anneal(0.25, 0.5) == pytest.approx(0.5)
    assert kl_anneal(0.5, 0.5) == 1.0 and kl_anneal(0.9, 0.5) == 1.0
    assert kl_anneal(0.0, 0.0) == 1.0  # no annealing: full weight from the start


def test_bayes_loss_and_gradient_by_hand():
    # relu evidence: logits (2, 1) → α = (3, 2), S = 5; every member says class 0 → y = (1, 0)
    method = Bayes(BayesOptions(evidence="relu", lam=2.0, anneal=0.5))
    logits, members = torch.tensor([[2.0, 1.0]]), torch.tensor([[[1.0, 0.0]] * 3])
    kl = math.log(2) - 0.5  # α̃ = (1, 2)
    assert _grad(method, logits, members, progress=0.0)[0] == pytest.approx(
        math.log(5 / 3), abs=1e-6
    )
    assert _grad(method, logits, members, progress=0.25)[0] == pytest.approx(
        math.log(5 / 3) + 1.0 * kl, abs=1e-6
    )
    loss, grad = _grad(method, logits, members, progress=1.0)
    assert loss == pytest.approx(math.log(5 / 3) + 2.0 * kl, abs=1e-6)
    # d/dα0 = 1/S − 1/α0; d/dα1 = 1/S + λ·d/da[log a − 1 + 1/a] at a = 2 = 1/5 + 2·(1/2 − 1/4)
    assert grad[0].tolist() == pytest.approx([1 / 5 - 1 / 3, 1 / 5 + 0.5], abs=1e-6)


def test_bayes_probabilities_and_uncertainty():
    torch.manual_seed(5)
    logits = torch.randn(6, 4) * 5
    for evidence in ("softplus", "exp", "relu"):
        method = Bayes(BayesOptions(evidence=evidence))
        probs = method.probabilities(logits)
        assert torch.allclose(probs.sum(-1), torch.ones(6), atol=1e-6)
        alpha = method.dirichlet(logits)
        assert torch.allclose(method.uncertainty(logits), 4 / alpha.sum(-1))
        assert ((method.uncertainty(logits) > 0) & (method.uncertainty(logits) <= 1)).all()
    huge = Bayes(BayesOptions(evidence="exp")).loss(
        torch.full((2, 2), 1e3), torch.full((2, 3, 2), 0.5), 1.0, None
    )
    assert torch.isfinite(huge)
    assert (
        Bayes(BayesOptions(aux_alpha=0.3)).needs_batch_context and not Bayes().needs_batch_context
    )
