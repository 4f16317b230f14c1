"""The artifact store: computes once, keys on every input, never exposes half an artifact."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from weaklift import store as store_module
from weaklift.store import ArtifactStore, CorruptArtifact, save_arrays


def _writer(value: float):
    def compute(out):
        save_arrays(out, {"x": np.full(3, value, dtype=np.float32)})
        return {"value": value}

    return compute


def test_second_call_is_a_cache_hit(tmp_path):
    store = ArtifactStore(tmp_path)
    a = store.get_or_compute("stage", 1, {"p": 1}, {}, _writer(1.0))
    b = store.get_or_compute("stage", 1, {"p": 1}, {}, _writer(2.0))
    assert store.executions["stage"] == 1
    assert a.key == b.key and b.meta == {"value": 1.0}
    assert b.arrays()["x"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("change", ["params", "upstream", "version"])
def test_any_changed_input_recomputes(tmp_path, change):
    store = ArtifactStore(tmp_path)
    store.get_or_compute("stage", 1, {"p": 1}, {"up": "a"}, _writer(1.0))
    args = {
        "params": ({"p": 2}, {"up": "a"}, 1),
        "upstream": ({"p": 1}, {"up": "b"}, 1),
        "version": ({"p": 1}, {"up": "a"}, 2),
    }[change]
    store.get_or_compute("stage", args[2], args[0], args[1], _writer(1.0))
    assert store.executions["stage"] == 2


def test_key_ignores_dict_order(tmp_path):
    store = ArtifactStore(tmp_path)
    assert store.key("s", 1, {"a": 1, "b": 2}, {}) == store.key("s", 1, {"b": 2, "a": 1}, {})


def test_failed_stage_leaves_no_artifact(tmp_path):
    store = ArtifactStore(tmp_path)

    def boom(out):
        save_arrays(out, {"x": np.zeros(2)})
        raise RuntimeError("killed mid-stage")

    with pytest.raises(RuntimeError):
        store.get_or_compute("stage", 1, {}, {}, boom)
    assert list((tmp_path / "stage").iterdir()) == []


def test_killed_process_leaves_no_artifact(tmp_path):
    """A process killed (os._exit) mid-stage leaves only a temp folder, removed by the next store."""
    script = textwrap.dedent(f"""
        import os, numpy as np
        from weaklift.store import ArtifactStore, save_arrays
        def compute(out):
            save_arrays(out, {{"x": np.zeros(2)}})
            os._exit(9)
        ArtifactStore({str(tmp_path)!r}).get_or_compute("stage", 1, {{}}, {{}}, compute)
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    leftovers = list((tmp_path / "stage").iterdir())
    assert all(p.name.startswith(".tmp-") for p in leftovers) and leftovers
    store = ArtifactStore(tmp_path)  # cleans temp folders of dead processes
    assert list((tmp_path / "stage").iterdir()) == []
    store.get_or_compute("stage", 1, {}, {}, _writer(0.0))
    assert store.executions["stage"] == 1


def test_corrupt_artifact_is_detected_and_recomputed(tmp_path, caplog):
    store = ArtifactStore(tmp_path)
    art = store.get_or_compute("stage", 1, {}, {}, _writer(1.0))
    data = (art.path / "arrays.safetensors").read_bytes()
    (art.path / "arrays.safetensors").write_bytes(data[:-4] + b"\0\0\0\1")
    again = store.get_or_compute("stage", 1, {}, {}, _writer(1.0))
    assert store.executions["stage"] == 2
    assert "corrupt" in caplog.text
    assert again.arrays()["x"].tolist() == [1.0, 1.0, 1.0]


def test_manifest_records_inputs_and_checksums(tmp_path):
    store = ArtifactStore(tmp_path)
    art = store.get_or_compute("stage", 3, {"p": 1}, {"up": "k"}, _writer(1.0))
    manifest = json.loads((art.path / "manifest.json").read_text())
    assert (
        manifest["version"] == 3
        and manifest["params"] == {"p": 1}
        and manifest["upstream"] == {"up": "k"}
    )
    assert (
        set(manifest["files"]) == {"arrays.safetensors"}
        and len(manifest["files"]["arrays.safetensors"]) == 64
    )


# --- concurrent use (issue 7, item 5) ---------------------------------------------------------


def _race_worker(root: str, log_file: str, start_at: float) -> str:
    """One of two processes asking for the same key at the same moment (spawned: top level)."""
    import time

    def compute(out):
        with open(log_file, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # a slow stage: the other process must wait, not compute it again
        save_arrays(out, {"x": np.arange(3, dtype=np.float32)})
        return {"by": os.getpid()}

    time.sleep(max(0.0, start_at - time.time()))
    return ArtifactStore(root).get_or_compute("stage", 1, {"p": 1}, {}, compute).key


def test_two_processes_racing_on_one_key_compute_it_once(tmp_path):
    import time

    log_file = tmp_path / "computed.txt"
    start_at = time.time() + 2.0  # both spawn, then ask together
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        keys = pool.starmap(_race_worker, [(str(tmp_path / "store"), str(log_file), start_at)] * 2)
    assert len(set(keys)) == 1
    assert len(log_file.read_text().splitlines()) == 1  # computed exactly once
    art = ArtifactStore(tmp_path / "store").get_or_compute("stage", 1, {"p": 1}, {}, _writer(9.0))
    assert art.arrays()["x"].tolist() == [0.0, 1.0, 2.0]


def test_transient_read_error_keeps_the_artifact(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    art = store.get_or_compute("stage", 1, {}, {}, _writer(1.0))

    def unreadable(path):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(store_module, "file_sha256", unreadable)
    with pytest.raises(OSError, match="Input/output error"):
        store.get_or_compute("stage", 1, {}, {}, _writer(2.0))
    monkeypatch.undo()
    assert (art.path / "arrays.safetensors").is_file()
    again = store.get_or_compute("stage", 1, {}, {}, _writer(2.0))
    assert store.executions["stage"] == 1 and again.meta == {"value": 1.0}


def test_losing_the_rename_race_to_an_identical_artifact_is_success(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    twin = ArtifactStore(tmp_path / "twin").get_or_compute("stage", 1, {}, {}, _writer(1.0))

    def compute_while_another_host_publishes(out):
        shutil.copytree(twin.path, tmp_path / "store" / "stage" / twin.key)
        return _writer(1.0)(out)

    art = store.get_or_compute("stage", 1, {}, {}, compute_while_another_host_publishes)
    assert art.key == twin.key and art.arrays()["x"].tolist() == [1.0, 1.0, 1.0]
    assert [p.name for p in (tmp_path / "store" / "stage").iterdir()] == [twin.key]


def test_losing_the_rename_race_to_a_corrupt_artifact_fails(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    twin = ArtifactStore(tmp_path / "twin").get_or_compute("stage", 1, {}, {}, _writer(1.0))
    (twin.path / "arrays.safetensors").write_bytes(b"garbage")

    def compute_while_another_host_publishes(out):
        shutil.copytree(twin.path, tmp_path / "store" / "stage" / twin.key)
        return _writer(1.0)(out)

    with pytest.raises(CorruptArtifact, match="checksum mismatch"):
        store.get_or_compute("stage", 1, {}, {}, compute_while_another_host_publishes)
    assert not [p for p in (tmp_path / "store" / "stage").iterdir() if p.name.startswith(".tmp-")]


def test_cleanup_removes_only_temporaries_whose_owner_is_known_dead(tmp_path):
    ArtifactStore(tmp_path).get_or_compute("stage", 1, {}, {}, _writer(1.0))
    host = store_module._hostname()
    dead = 999_999_999  # above any pid_max
    names = {
        "dead_here": f".tmp-abc-{host}-{dead}-deadbeef",
        "live_here": f".tmp-abc-{host}-{os.getppid()}-0badf00d",
        "dead_elsewhere": f".tmp-abc-{host}x-{dead}-deadbeef",
        "unknown_owner": f".tmp-abc-{dead}-deadbeef",  # an older name: no host
    }
    for name in names.values():
        (tmp_path / "stage" / name).mkdir()
    ArtifactStore(tmp_path)
    left = {p.name for p in (tmp_path / "stage").iterdir() if p.name.startswith(".tmp-")}
    assert left == {names["live_here"], names["dead_elsewhere"], names["unknown_owner"]}
    assert store_module.temp_owner(names["dead_here"]) == (host, dead)


def test_temp_names_carry_host_and_pid():
    name = store_module.temp_name("0123abcd")
    assert store_module.temp_owner(name) == (store_module._hostname(), os.getpid())
