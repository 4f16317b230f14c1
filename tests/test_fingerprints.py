"""Model fingerprints in cache keys: a hub id's resolved commit; a folder's tokenizer and every
weight file (issue 7, item 4c)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from huggingface_hub import constants

from tests.tiny_models import make_tiny_model
from weaklift.errors import WeakliftError
from weaklift.models import loading
from weaklift.models.loading import model_fingerprint


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return make_tiny_model(tmp_path / "model", "llama")


def _touch_same_size(path: Path, change: bytes = b"x") -> None:
    """Replace a file's content without changing its size or mtime (what size+mtime keys miss)."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1:] = change if data[-1:] != change else b"y"
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_replacing_tokenizer_json_changes_the_fingerprint(folder: Path) -> None:
    before = model_fingerprint(str(folder))
    tokenizer = folder / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNKNOWN]"'))
    assert model_fingerprint(str(folder)) != before


def test_same_size_same_mtime_weight_change_is_seen(folder: Path) -> None:
    before = model_fingerprint(str(folder))
    _touch_same_size(folder / "model.safetensors")
    assert model_fingerprint(str(folder)) != before


def test_every_shard_and_subfolder_counts_but_docs_do_not(folder: Path) -> None:
    shards = folder / "shards"
    shards.mkdir()
    for i in (1, 2):
        shutil.copy(folder / "model.safetensors", shards / f"model-0000{i}-of-00002.safetensors")
    before = model_fingerprint(str(folder))
    _touch_same_size(shards / "model-00002-of-00002.safetensors")
    after = model_fingerprint(str(folder))
    assert after != before
    (folder / "README.md").write_text("notes")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "lock").write_text("x")
    assert model_fingerprint(str(folder)) == after


def _fake_hub_cache(root: Path, repo: str, commit: str, source: Path) -> None:
    """The layout huggingface_hub writes: refs/main names the snapshot folder of that commit."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(source, repo_dir / "snapshots" / commit, dirs_exist_ok=True)


def test_hub_fingerprint_is_the_cached_commit(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    first = "a" * 40
    _fake_hub_cache(cache, "org/tiny", first, folder)
    assert model_fingerprint("org/tiny") == f"hub:org/tiny@{first}"
    second = "b" * 40  # a new upload, pulled into the cache: main now points elsewhere
    _fake_hub_cache(cache, "org/tiny", second, folder)
    assert model_fingerprint("org/tiny") == f"hub:org/tiny@{second}"


def test_uncached_hub_model_offline_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeakliftError, match="org/absent is not in the local Hugging Face cache"):
        model_fingerprint("org/absent")


def test_a_weight_files_hash_is_computed_once_across_processes(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEAKLIFT_CACHE", str(tmp_path / "cache"))
    hashed: list[Path] = []
    real = loading.file_sha256
    monkeypatch.setattr(loading, "file_sha256", lambda p: hashed.append(p) or real(p))
    loading._content_hash.cache_clear()
    first = model_fingerprint(str(folder))
    files = len(hashed)
    assert files >= 3  # config, tokenizer, weights
    loading._content_hash.cache_clear()  # what a new process starts with
    assert model_fingerprint(str(folder)) == first
    assert len(hashed) == files  # read from the disk entries, no file hashed again
    for entry in (tmp_path / "cache" / "file-hashes").iterdir():
        entry.write_text('{"sha256": "not a digest"')  # corrupt: recomputed, same answer
    loading._content_hash.cache_clear()
    assert model_fingerprint(str(folder)) == first
    assert len(hashed) == 2 * files
    _touch_same_size(folder / "model.safetensors")  # new bytes: never an old entry
    loading._content_hash.cache_clear()
    assert model_fingerprint(str(folder)) != first
