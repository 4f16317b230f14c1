"""The artifact store: computes once, keys on every input, never exposes half an artifact."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from weaklift.store import ArtifactStore, save_arrays


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
