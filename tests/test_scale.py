"""Research scale (issue 16): compute dtype, one copy of each backbone, length-grouped batches."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests import test_layers
from tests.test_pipeline import _overrides
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.methods import Xent
from weaklift.models import device
from weaklift.models.device import AUTO_DTYPE_ENV, resolve_dtype, training_attention
from weaklift.pipeline import run_experiment
from weaklift.stages.data import features_stage
from weaklift.stages.training import _Inputs, _model_params
from weaklift.training.batches import TokenBatcher, epoch_batches, inference_batches
from weaklift.training.classifier import LoopConfig, predict_proba, train_classifier

CPU = torch.device("cpu")
# The tiny weak/strong models, review task and stage context of the layer tests.
workdir = test_layers.workdir
_context = test_layers._context


# --- dtype resolution ----------------------------------------------------------------------------


def test_auto_is_bfloat16_exactly_where_the_cpu_has_bf16_matmul_units(monkeypatch, caplog):
    monkeypatch.delenv(AUTO_DTYPE_ENV)
    device._warn_slow_bf16.cache_clear()
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert resolve_dtype("auto", CPU) == resolve_dtype("bfloat16", CPU) == torch.bfloat16
    assert "slower" not in caplog.text
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert resolve_dtype("auto", CPU) == torch.float32
    assert resolve_dtype("bfloat16", CPU) == torch.bfloat16  # named: honoured, but slow...
    assert resolve_dtype("bfloat16", CPU) == torch.bfloat16
    warned = [r for r in caplog.records if "100x slower than in float32" in r.getMessage()]
    assert len(warned) == 1  # ...and said so, once


def test_a_dtype_the_device_cannot_run_is_a_clear_error(monkeypatch):
    with pytest.raises(WeakliftError, match="float16 needs a GPU"):
        resolve_dtype("float16", CPU)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(WeakliftError, match="does not support it"):
        resolve_dtype("bfloat16", torch.device("cuda"))
    monkeypatch.setenv(AUTO_DTYPE_ENV, "half")
    with pytest.raises(WeakliftError, match=AUTO_DTYPE_ENV):
        resolve_dtype("auto", CPU)


def test_the_environment_pins_what_auto_means_for_every_process(monkeypatch):
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setenv(AUTO_DTYPE_ENV, "float32")
    assert resolve_dtype("auto", CPU) == torch.float32
    monkeypatch.setenv(AUTO_DTYPE_ENV, "bfloat16")
    assert resolve_dtype("auto", CPU) == torch.bfloat16


# --- dtype in models, keys and results -----------------------------------------------------------


def test_cache_keys_of_features_and_classifiers_differ_by_dtype(workdir, tmp_path):
    keys, params = {}, {}
    for dtype in ("float32", "bfloat16"):
        ctx = _context(workdir, tmp_path / dtype, f"strong.dtype={dtype}", "strong.mode=lora")
        probe = ctx.cfg.strong.model_copy(update={"mode": "probe"})
        keys[dtype] = features_stage(ctx, probe).key
        params[dtype] = _model_params(ctx, ctx.cfg.strong)
        loaded = ctx.backbone(probe)
        assert next(loaded.model.parameters()).dtype == getattr(torch, dtype)
    assert keys["float32"] != keys["bfloat16"]
    assert params["float32"]["dtype"] == "float32" and params["bfloat16"]["dtype"] == "bfloat16"


def test_a_bfloat16_lora_classifier_keeps_its_head_adapters_and_loss_in_float32(workdir, tmp_path):
    ctx = _context(workdir, tmp_path, "strong.dtype=bfloat16", "strong.mode=lora")
    inputs = _Inputs(ctx, ctx.cfg.strong)
    data = inputs.batcher("transfer")
    targets = np.eye(2, dtype=np.float32)[ctx.labels("transfer")]
    with inputs.new_model(seed=0, train_split="transfer") as model:
        trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
        frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
        assert set(trainable.values()) == {torch.float32} and frozen == {torch.bfloat16}
        assert any("lora_A" in n for n in trainable) and "head.weight" in trainable
        logits = model(**data.batch(np.arange(4), CPU))
        assert logits.dtype == torch.float32
        loop = LoopConfig(epochs=1, batch_size=8, lr=1e-3, group_by_length=True)
        history = train_classifier(model, data, targets, Xent(), loop)
        assert all(np.isfinite(history.train_loss))


def test_full_finetuning_keeps_float32_master_weights_and_multiplies_in_bf16(workdir, tmp_path):
    ctx = _context(workdir, tmp_path, "strong.dtype=bfloat16", "strong.mode=full")
    inputs = _Inputs(ctx, ctx.cfg.strong)
    batch = inputs.batcher("transfer").batch(np.arange(4), CPU)
    with inputs.new_model(seed=0, train_split="transfer") as model:
        assert {p.dtype for p in model.parameters()} == {torch.float32}
        seen = []
        linear = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Linear))
        handle = linear.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
        model(**batch)
        handle.remove()
        assert seen == [torch.bfloat16]  # autocast: the matmul ran in the compute dtype
    assert ctx._backbones == {}  # full mode never loaded (nor copied) the shared backbone


def test_results_record_each_models_resolved_dtype(workdir, tmp_path):
    overrides = _overrides(workdir, tmp_path, "strong.dtype=bfloat16", "methods=[xent]")
    results = run_experiment(load_config(None, overrides))
    assert results["dtypes"] == {"weak": "float32", "strong": "bfloat16"}
    saved = json.loads((results.run_dir / "results.json").read_text())
    assert saved["dtypes"] == results["dtypes"]


# --- length-grouped batches ----------------------------------------------------------------------


def test_length_grouped_batches_keep_every_example_exactly_once_and_pad_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 200, size=1000)
    grouped = epoch_batches(1000, 16, torch.Generator().manual_seed(1), lengths)
    plain = epoch_batches(1000, 16, torch.Generator().manual_seed(1))
    for batches in (grouped, plain):
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
        assert all(1 <= len(b) <= 16 for b in batches)

    def padding(batches):
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches)

    assert padding(grouped) < padding(plain) / 3
    again = epoch_batches(1000, 16, torch.Generator().manual_seed(1), lengths)
    assert all(np.array_equal(a, b) for a, b in zip(grouped, again, strict=True))
    other = epoch_batches(1000, 16, torch.Generator().manual_seed(2), lengths)
    assert not all(np.array_equal(a, b) for a, b in zip(grouped, other, strict=True))


def test_inference_batches_run_longest_first_and_predictions_keep_the_data_order(workdir, tmp_path):
    lengths = np.array([3, 9, 1, 7])
    assert [b.tolist() for b in inference_batches(lengths, 4, 2)] == [[1, 3], [0, 2]]
    ctx = _context(workdir, tmp_path, "strong.mode=lora")
    inputs = _Inputs(ctx, ctx.cfg.strong)
    words = [
        "good",
        "great",
        "fine",
        "lovely",
        "superb",
        "bad",
        "awful",
        "poor",
        "boring",
        "dull",
        "the",
        "film",
        "was",
        "really",
    ]
    texts = [" ".join(words[: 1 + (i * 5) % len(words)]) for i in range(12)]
    data = TokenBatcher(ctx.tokenizer(ctx.cfg.strong.model), texts, 64)
    assert len(set(data.lengths())) > 3
    with inputs.new_model(seed=0, train_split="transfer") as model:
        batched = predict_proba(model, data, batch_size=5)
        one_by_one = np.concatenate([predict_proba(model, _Row(data, i)) for i in range(len(data))])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


class _Row:
    """One row of a batcher, as a batcher (no padding at all)."""

    def __init__(self, base, row):
        self.base, self.row = base, row

    def __len__(self):
        return 1

    def lengths(self):
        return None

    def batch(self, rows, device):
        return self.base.batch(np.array([self.row]), device)


# --- gradient checkpointing ----------------------------------------------------------------------


def _checkpointing(model) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def test_gradient_checkpointing_gives_the_same_gradients_and_is_off_after_the_stage(
    workdir, tmp_path
):
    grads = {}
    for on in (False, True):
        ctx = _context(
            workdir, tmp_path / str(on), "strong.mode=lora", f"strong.gradient_checkpointing={on}"
        )
        inputs = _Inputs(ctx, ctx.cfg.strong)
        batch = inputs.batcher("transfer").batch(np.arange(6), CPU)
        with inputs.new_model(seed=0, train_split="transfer") as model:
            assert _checkpointing(model.backbone) == on
            model.train()
            model(**batch).logsumexp(-1).sum().backward()
            grads[on] = {
                n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
            }
        assert not _checkpointing(ctx.backbone(ctx.cfg.strong).model)
    assert grads[True].keys() == grads[False].keys() and any("lora" in n for n in grads[True])
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[True][name], grad, atol=1e-6, rtol=1e-5)


def _attention_gradients(context) -> list[torch.Tensor]:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 16, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    with context:
        F.scaled_dot_product_attention(q, k, v, is_causal=True).float().square().sum().backward()
    return [t.grad for t in (q, k, v)]


def test_bf16_attention_with_gradients_runs_sdpas_math_kernel_on_a_cpu():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cpu = torch.device("cpu")
    got = _attention_gradients(training_attention(cpu, torch.bfloat16))
    expected = _attention_gradients(sdpa_kernel(SDPBackend.MATH))
    flash = _attention_gradients(sdpa_kernel(SDPBackend.FLASH_ATTENTION))
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(got, flash, strict=True))  # kernels differ
    # float32, inference and GPUs keep the default choice (flash is faster there)
    assert isinstance(training_attention(cpu, torch.float32), contextlib.nullcontext)
    assert isinstance(
        training_attention(torch.device("cuda"), torch.bfloat16), contextlib.nullcontext
    )
    with torch.no_grad():
        assert isinstance(training_attention(cpu, torch.bfloat16), contextlib.nullcontext)
