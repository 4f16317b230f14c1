"""Generative finetuning lowers the LM loss, and its output is what the next stages load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.test_pipeline import _overrides, workdir  # noqa: F401  (shared tiny models and data)
from tests.tiny_models import make_tiny_model
from weaklift import distributed
from weaklift.config import GenftConfig
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.models.genft import _step, _token_ids, generative_finetune
from weaklift.models.loading import load_backbone
from weaklift.pipeline import run_experiment
from weaklift.store import ArtifactStore

TEXTS = [
    f"the film was {w} and the plot was {v}"
    for w in ("good", "bad", "dull", "great")
    for v in ("fine", "poor", "superb")
] * 10


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_genft_lowers_held_out_lm_loss_and_saves_a_loadable_model(tmp_path, mode):
    folder = make_tiny_model(tmp_path / "tiny", arch="llama", texts=TEXTS)
    cfg = GenftConfig(enabled=True, mode=mode, epochs=3, lr=3e-3, batch_size=8, max_texts=120)
    meta = generative_finetune(str(folder), TEXTS, cfg, tmp_path / "out", seed=0)
    assert meta["lm_loss_after"] < meta["lm_loss_before"] - 0.1
    tuned, original = load_backbone(str(tmp_path / "out" / "model")), load_backbone(str(folder))
    tuned_params = dict(tuned.model.named_parameters())
    changed = [
        n for n, p in original.model.named_parameters() if not torch.equal(p, tuned_params[n])
    ]
    assert changed  # the saved folder holds the finetuned weights, LoRA merged in
    assert not any("lora" in n for n in tuned_params)


@pytest.mark.parametrize(("mode", "saved"), [("full", torch.float32), ("lora", torch.bfloat16)])
def test_genft_runs_in_the_configs_compute_dtype(tmp_path, mode, saved):
    """It used to load in the checkpoint's own dtype whatever ``dtype`` said, so a bf16 checkpoint
    was fully finetuned on bf16 weights (most AdamW updates round away). Now full finetuning keeps
    float32 master weights and LoRA the base in the compute dtype; every forward runs in bf16."""
    folder = make_tiny_model(tmp_path / "tiny", arch="llama", texts=TEXTS)
    cfg = GenftConfig(enabled=True, mode=mode, epochs=3, lr=3e-3, batch_size=8, max_texts=120)
    seen: set[torch.dtype] = set()
    original = torch.nn.Linear.forward

    def recording(self, x):
        out = original(self, x)
        seen.add(out.dtype)
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Linear, "forward", recording)
        meta = generative_finetune(str(folder), TEXTS, cfg, tmp_path / "out", 0, "bfloat16")
    assert meta["lm_loss_after"] < meta["lm_loss_before"] - 0.1
    assert seen == {torch.bfloat16}
    weights = load_file(tmp_path / "out" / "model" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {saved}


class _RecordingOptimizer:
    """Keeps the gradients a step would apply (the step itself changes nothing)."""

    def __init__(self, params):
        self.params, self.seen = list(params), []

    def step(self):
        self.seen.append([p.grad.clone() for p in self.params])

    def zero_grad(self):
        for p in self.params:
            p.grad = None


def test_a_step_shared_by_two_processes_sums_to_the_one_process_gradient(tmp_path, monkeypatch):
    """Each process's share of the batch has its own token count: weighting each share's mean
    loss by its share of the tokens makes the summed gradients the whole batch's."""
    folder = make_tiny_model(tmp_path / "tiny", arch="llama", texts=TEXTS)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    texts = ["the film was good", "the plot was poor and the film was dull", "great film", "bad"]
    batch = _token_ids(AutoTokenizer.from_pretrained(folder), texts, 32)
    assert len({len(ids) for ids in batch}) == 4  # shares of different token counts

    def gradients(shares: list[list[int]]) -> list[torch.Tensor]:
        optimizer = _RecordingOptimizer(model.parameters())
        for share in shares:
            monkeypatch.setattr(
                distributed, "local_micro_batches", lambda r, m, s=share: [np.array(s)]
            )
            _step(model, optimizer, batch, 0, torch.device("cpu"), torch.float32)
        return [sum(grads) for grads in zip(*optimizer.seen, strict=True)]

    for whole, summed in zip(gradients([[0, 1, 2, 3]]), gradients([[0, 2], [1, 3]]), strict=True):
        torch.testing.assert_close(summed, whole, atol=1e-6, rtol=1e-5)


def test_genft_refuses_encoders(tmp_path):
    folder = make_tiny_model(tmp_path / "enc", arch="bert", texts=TEXTS)
    with pytest.raises(WeakliftError, match="decoder"):
        generative_finetune(str(folder), TEXTS, GenftConfig(enabled=True), tmp_path / "out", seed=0)


def test_pipeline_uses_the_finetuned_backbone_for_ceiling_and_students(workdir, tmp_path):  # noqa: F811
    overrides = _overrides(
        workdir,
        tmp_path,
        "methods=[xent]",
        "strong.genft.enabled=true",
        "strong.genft.max_texts=60",
    )
    store = ArtifactStore(tmp_path / "artifacts")
    run_experiment(load_config(None, overrides), store)
    assert store.executions["genft"] == 1
    genft_dir = next((tmp_path / "artifacts" / "genft").iterdir())
    ceiling_dir = next((tmp_path / "artifacts" / "ceiling").iterdir())
    manifest = (ceiling_dir / "manifest.json").read_text()
    assert str(genft_dir / "model") in manifest  # the ceiling was trained on the genft backbone
    again = ArtifactStore(tmp_path / "artifacts")
    run_experiment(load_config(None, overrides), again)
    assert sum(again.executions.values()) == 0
