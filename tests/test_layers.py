"""Layer choice for probes: one all-layer extraction, layer picked when reading, `weaklift layers`,
and a pristine shared backbone after lora/full training (issue 7, items 1 and 4a)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

from tests.test_pipeline import _overrides, _write_task
from tests.tiny_models import make_tiny_model
from weaklift.cli import main
from weaklift.config_files import load_config
from weaklift.errors import WeakliftError
from weaklift.layers import layer_scores
from weaklift.methods import Xent
from weaklift.models.classifier import build_backbone_classifier
from weaklift.models.features import compact, extract_features, resolve_layers
from weaklift.models.loading import load_backbone
from weaklift.models.pooling import pool
from weaklift.pipeline import run_experiment
from weaklift.stages import StageContext, splits_stage
from weaklift.stages.data import features_stage, split_features
from weaklift.stages.training import _Inputs
from weaklift.store import ArtifactStore
from weaklift.tasks import load_task
from weaklift.training.batches import TokenBatcher
from weaklift.training.classifier import LoopConfig, train_classifier

TEXTS = ["the cat is big", "paris is the capital of france", "no", "the sky is blue and green"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    texts = ["good great fine lovely superb bad awful poor boring dull the film was really"]
    return {
        "weak": str(make_tiny_model(root / "weak", arch="bert", texts=texts)),
        "strong": str(make_tiny_model(root / "strong", arch="llama", texts=texts)),
        "data": str(_write_task(root / "reviews.jsonl")),
    }


def test_all_layer_extraction_is_one_pass_matching_the_last_state(workdir):
    backbone = load_backbone(workdir["strong"], device="cpu")
    hidden = extract_features(backbone, TEXTS, "auto", 64, 3, progress=False, all_layers=True)
    last = extract_features(backbone, TEXTS, "auto", 64, 3, progress=False)
    assert hidden.shape == (4, 3, 32)  # 2 blocks + embeddings
    np.testing.assert_allclose(hidden[:, -1], last, atol=1e-5)
    ids = backbone.tokenizer(TEXTS[2], return_tensors="pt")["input_ids"]
    embedding = backbone.model.get_input_embeddings()(ids)[0, -1].detach().numpy()
    np.testing.assert_allclose(hidden[2, 0], embedding, atol=1e-6)  # state 0 = embeddings


def test_resolve_layers():
    assert resolve_layers("middle", 19) == [9] and resolve_layers("middle", 31) == [15]
    assert resolve_layers(-1, 19) == [18] and resolve_layers(0, 19) == [0]
    assert resolve_layers([9, -1], 19) == [9, 18]
    with pytest.raises(WeakliftError, match="layer 19 is out of range.*0..18"):
        resolve_layers(19, 19)
    with pytest.raises(WeakliftError, match="out of range"):
        resolve_layers([-20], 19)


def test_compact_halves_storage_unless_values_overflow_float16():
    small = np.array([[1.5, -2.25]], dtype=np.float32)
    assert compact(small).dtype == np.float16
    huge = np.array([[1e5, 1.0]], dtype=np.float32)
    assert compact(huge).dtype == np.float32 and compact(huge)[0, 0] == 1e5


def _context(workdir, tmp_path, *extra):
    cfg = load_config(None, _overrides(workdir, tmp_path, *extra))
    ctx = StageContext(ArtifactStore(tmp_path / "artifacts"), load_task(cfg.task), cfg)
    splits_stage(ctx)
    return ctx


def test_split_features_pick_rows_and_layers_from_one_artifact(workdir, tmp_path):
    ctx = _context(workdir, tmp_path)
    strong = ctx.cfg.strong
    artifact = features_stage(ctx, strong)
    hidden = artifact.arrays()["hidden"]  # (R, 3, 32) over the union of the splits
    rows = artifact.arrays()["rows"]
    assert hidden.shape == (140, 3, 32) and np.all(np.diff(rows) > 0)
    val = ctx.splits["val"]
    at = np.searchsorted(rows, val)
    both = split_features(ctx, strong.model_copy(update={"layer": [0, -1]}), "val")["features"]
    np.testing.assert_array_equal(both[:, :32], hidden[at, 0].astype(np.float32))
    np.testing.assert_array_equal(both[:, 32:], hidden[at, 2].astype(np.float32))
    middle = split_features(ctx, strong, "val")["features"]  # default: middle = state 1
    np.testing.assert_array_equal(middle, hidden[at, 1].astype(np.float32))
    for layer in (0, 2, [1, 2]):
        split_features(ctx, strong.model_copy(update={"layer": layer}), "test")
    assert ctx.store.executions["features"] == 1  # every layer and split read the same pass


def test_split_features_refuse_rows_that_were_not_extracted(workdir, tmp_path):
    ctx = _context(workdir, tmp_path)
    ctx.feature_rows = ctx.splits["val"]
    with pytest.raises(WeakliftError, match="split test has rows without probe features"):
        split_features(ctx, ctx.cfg.strong, "test")


def test_layers_command_scores_every_layer_on_val_and_feeds_the_run(
    workdir, tmp_path, capsys, monkeypatch
):
    overrides = _overrides(workdir, tmp_path)
    read = []
    original = StageContext.labels
    monkeypatch.setattr(
        StageContext, "labels", lambda self, split: read.append(split) or original(self, split)
    )
    assert main(["layers", *overrides]) == 0
    out = capsys.readouterr().out
    assert f"weak {workdir['weak']}: GT probe on weak_train, accuracy on val" in out
    assert out.count("configured") == 2 and out.count("best") == 2
    assert set(read) == {"weak_train", "val"}  # never test
    store = ArtifactStore(tmp_path / "artifacts")
    scores = layer_scores(load_config(None, overrides), store)
    assert [len(s.accuracy) for s in scores] == [3, 3]
    assert all(0 <= a <= 1 for s in scores for a in s.accuracy)
    assert store.executions["features"] == 0  # the command's own extraction is cached
    run_experiment(load_config(None, [*overrides, "methods=[xent]"]), store)
    assert store.executions["features"] == 2  # the run's row set: every split
    ctx = _context(workdir, tmp_path)
    probed = len(np.union1d(ctx.splits["weak_train"], ctx.splits["val"]))
    for model_cfg in (ctx.cfg.weak, ctx.cfg.strong):
        assert features_stage(ctx, model_cfg).meta["reused_rows"] == probed  # copied, not rerun


def test_reused_rows_equal_a_fresh_extraction(workdir, tmp_path):
    partial = _context(workdir, tmp_path)
    partial.feature_rows = partial.splits["val"]
    features_stage(partial, partial.cfg.strong)
    full = _context(workdir, tmp_path)  # same store: copies val, extracts the rest
    merged = features_stage(full, full.cfg.strong)
    assert merged.meta["reused_rows"] == len(partial.splits["val"])
    fresh = _context(workdir, tmp_path / "elsewhere")
    expected = features_stage(fresh, fresh.cfg.strong)
    assert fresh.store.executions["features"] == 1 and expected.meta["reused_rows"] == 0
    np.testing.assert_array_equal(merged.arrays()["rows"], expected.arrays()["rows"])
    np.testing.assert_allclose(
        merged.arrays()["hidden"].astype(np.float32),
        expected.arrays()["hidden"].astype(np.float32),
        atol=1e-2,  # float16 storage; batches of other lengths differ in rounding only
    )


def test_layer_must_be_an_index_middle_or_list():
    code = main(["validate", "strong.layer=top"])
    assert code == 2
    assert load_config(None, ["weak.layer=[3,-1]"]).weak.layer == [3, -1]


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_finetuning_leaves_the_shared_backbone_pristine_without_copying_it(workdir, tmp_path, mode):
    """lora trains adapters on the ONE shared base (same parameter tensors, no deep copy) and takes
    them out after the stage; full trains a private load. Either way probe features extracted
    afterwards are the pretrained model's, and no trained tensor outlives the stage."""
    ctx = _context(workdir, tmp_path, f"strong.mode={mode}", "strong.layer=-1")
    shared = ctx.backbone(ctx.cfg.strong)
    base_tensors = {n: p.data_ptr() for n, p in shared.model.named_parameters()}
    inputs = _Inputs(ctx, ctx.cfg.strong)
    loop = LoopConfig(epochs=2, batch_size=8, lr=1e-2, select_best=False)
    targets = np.eye(2, dtype=np.float32)[ctx.labels("transfer")]
    with inputs.new_model(seed=0, train_split="transfer") as model:
        train_classifier(model, inputs.batcher("transfer"), targets, Xent(), loop)
        trained = [weakref.ref(p) for p in model.parameters() if p.requires_grad]
        base = model.backbone.get_base_model() if mode == "lora" else model.backbone
        assert (base is shared.model) == (mode == "lora")
    del model, base
    gc.collect()
    assert all(ref() is None for ref in trained)  # adapters, head (and full weights) are freed
    assert not any("lora" in name for name, _ in shared.model.named_modules())
    assert {n: p.data_ptr() for n, p in shared.model.named_parameters()} == base_tensors
    assert not shared.model.training
    after = extract_features(shared, TEXTS, "auto", 64, 4, progress=False, all_layers=True)
    fresh = load_backbone(ctx.cfg.strong.model, device="cpu")
    expected = extract_features(fresh, TEXTS, "auto", 64, 4, progress=False, all_layers=True)
    np.testing.assert_allclose(after, expected, atol=1e-6)


def test_finetuned_classifier_reads_the_configured_layer(workdir):
    loaded = load_backbone(workdir["strong"], device="cpu")
    cfg = load_config(None, [f"strong.model={workdir['strong']}", "strong.mode=full"]).strong
    classifier = build_backbone_classifier(loaded, cfg.model_copy(update={"layer": 1}), 2)
    batch = TokenBatcher(loaded.tokenizer, TEXTS, 64).batch(np.arange(4), torch.device("cpu"))
    with torch.no_grad():
        logits = classifier(**batch)
        states = loaded.model(**batch, output_hidden_states=True).hidden_states
        pooled = pool(states[1], batch["attention_mask"], "last")
        normed = torch.nn.functional.layer_norm(pooled, pooled.shape[-1:])
        np.testing.assert_allclose(logits, classifier.head(normed), atol=1e-5)
    wide = build_backbone_classifier(loaded, cfg.model_copy(update={"layer": [1, -1]}), 2)
    assert wide.head.in_features == 64
    assert wide(**batch).shape == (4, 2)
