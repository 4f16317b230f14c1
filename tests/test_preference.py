"""Reward modelling: Bradley–Terry losses by hand, balanced pair order, pairs end to end."""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_pipeline import FILLER, NEGATIVE, POSITIVE, workdir  # noqa: F401
from weaklift.config import TaskConfig
from weaklift.config_files import load_config
from weaklift.layers import layer_scores
from weaklift.methods.logconf import Logconf, LogconfOptions
from weaklift.methods.xent import Xent
from weaklift.models.classifier import PairwiseRewardHead
from weaklift.pipeline import run_experiment
from weaklift.store import ArtifactStore
from weaklift.tasks import load_task
from weaklift.tasks.preference import balanced_order, pairs_from_rows

DATA = Path(
    os.environ.get("WEAKLIFT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_soft_bradley_terry_loss_and_gradient_by_hand():
    reward_a = torch.tensor([1.0], requires_grad=True)
    reward_b = torch.tensor([0.0], requires_grad=True)
    logits = torch.stack([reward_b, reward_a], dim=-1)  # (1, 2): class 1 = "a preferred"
    loss = Xent().loss(logits, torch.tensor([[0.2, 0.8]]), 0.0)
    loss.backward()
    expected = -(0.8 * math.log(_sigmoid(1.0)) + 0.2 * math.log(_sigmoid(-1.0)))
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-6)
    assert float(reward_a.grad) == pytest.approx(_sigmoid(1.0) - 0.8, abs=1e-6)
    assert float(reward_b.grad) == pytest.approx(-(_sigmoid(1.0) - 0.8), abs=1e-6)


def test_hard_bradley_terry_is_the_classic_reward_model_loss():
    logits = torch.tensor([[0.5, 2.0]])  # r(b) = 0.5, r(a) = 2
    loss = Xent().loss(logits, torch.tensor([[0.0, 1.0]]), 0.0)
    assert float(loss) == pytest.approx(-math.log(_sigmoid(1.5)), abs=1e-6)


def test_pairwise_logconf_hardens_by_reward_margin():
    # margins r(a) − r(b): 2, 1, −1, −2; weak says half the pairs prefer a → top-2 margins become "a".
    logits = torch.tensor([[0.0, 2.0], [0.0, 1.0], [0.0, -1.0], [0.0, -2.0]], requires_grad=True)
    weak = torch.tensor([[0.4, 0.6], [0.6, 0.4], [0.3, 0.7], [0.7, 0.3]])
    loss = Logconf(LogconfOptions(alpha=1.0, warmup=0.0)).loss(logits, weak, 1.0, None)
    hard_targets = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    expected = -(hard_targets * torch.log_softmax(logits, -1)).sum(-1).mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), abs=1e-6)


def test_reward_head_scores_each_text_once():
    head = PairwiseRewardHead(3)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    logits = head(a, b)
    assert torch.allclose(
        logits[:, 1] - logits[:, 0], (head.reward(a) - head.reward(b)).squeeze(-1)
    )
    assert torch.allclose(
        torch.softmax(logits, -1)[:, 1], torch.sigmoid(logits[:, 1] - logits[:, 0])
    )


@pytest.mark.parametrize("n", [10, 11, 1000])
def test_pair_order_is_randomised_and_exactly_balanced(n):
    mask = balanced_order(n, np.random.default_rng(0))
    assert mask.sum() == n // 2
    chosen = [f"chosen {i}" for i in range(n)]
    rejected = [f"rejected {i}" for i in range(n)]
    data = pairs_from_rows("t", chosen, rejected, np.random.default_rng(0), "test")
    for first, second, label in zip(data.texts, data.texts_b, data.labels, strict=True):
        assert first.startswith("chosen" if label == 1 else "rejected")
        assert {first.split()[1]} == {second.split()[1]}  # both texts of the same pair
    assert abs(data.labels.sum() - n / 2) <= 0.5
    if n == 1000:  # positions are random, not alternating
        assert 0 < np.abs(np.diff(data.labels)).sum() < n - 1


def test_hh_pairs_from_the_real_files():
    folder = DATA / "hh_rlhf"
    if not folder.exists():
        pytest.skip("HH-RLHF data not present (set WEAKLIFT_DATA)")
    data = load_task(TaskConfig(name="anthropic_hh_pairs", path=str(folder)))
    assert 8000 < len(data.texts) <= 8552
    assert data.labels.sum() == len(data.labels) // 2
    assert all(a != b for a, b in zip(data.texts[:100], data.texts_b[:100], strict=True))


def _write_pairs(path: Path, n: int = 160) -> str:
    rng = np.random.default_rng(0)
    with gzip.open(path, "wt") as handle:
        for _ in range(n):
            stem = " ".join(rng.choice(FILLER, size=4))
            row = {
                "chosen": f"{stem} {rng.choice(POSITIVE)}",
                "rejected": f"{stem} {rng.choice(NEGATIVE)}",
            }
            handle.write(json.dumps(row) + "\n")
    return str(path)


@pytest.mark.parametrize("mode", ["probe", "lora"])
def test_reward_modelling_end_to_end(workdir, tmp_path, mode):  # noqa: F811
    data = _write_pairs(tmp_path / "pairs.jsonl.gz")
    cfg = load_config(
        None,
        [
            "task.name=anthropic_hh_pairs",
            f"task.path={data}",
            f"weak.model={workdir['weak']}",
            f"strong.model={workdir['strong']}",
            f"weak.mode={mode}",
            f"strong.mode={mode}",
            f"output_dir={tmp_path}",
            "split.weak_train=40",
            "split.transfer=40",
            "split.val=20",
            "split.test=40",
            "train.probe.epochs=5",
            "train.finetune.epochs=1",
            "train.finetune.lr=1e-3",
            "methods=[xent,logconf]",
            "bootstrap_samples=50",
            "seeds=1",
            "controls=false",
        ],
    )
    store = ArtifactStore(tmp_path / "artifacts")
    results = run_experiment(cfg, store).data
    assert results["task"] == "anthropic_hh_pairs"
    assert set(results["students"]) == {"xent", "logconf"}
    for model in (results["weak"], results["ceiling"], *results["students"].values()):
        assert 0 <= model["accuracy"] <= 1
    if mode == "probe":
        assert store.executions["features"] == 2  # one pass per model; holds both texts of a pair
        scores = layer_scores(cfg, store)  # Bradley–Terry probes on feature differences, per layer
        assert [len(s.accuracy) for s in scores] == [3, 3]
        assert all(0 <= a <= 1 for s in scores for a in s.accuracy)
