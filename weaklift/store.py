"""Content-keyed artifact store: every stage output lives under ``<root>/<stage>/<key>/``.

The key hashes the stage name, its version, every config field the stage reads and the keys of its
upstream artifacts, so a changed input never reuses a stale result and an identical stage is never
recomputed. A stage writes into a temporary folder that is renamed into place only when complete;
``manifest.json`` records a SHA-256 per file, and a corrupt artifact is detected and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"


def stable_hash(obj: Any, length: int = 16) -> str:
    """SHA-256 of a canonical JSON rendering (sorted keys), independent of dict order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON next to its destination, then rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


@dataclass(frozen=True)
class Artifact:
    """A finished, verified stage output."""

    stage: str
    key: str
    path: Path
    meta: dict[str, Any]

    def arrays(self, name: str = "arrays") -> dict[str, np.ndarray]:
        return load_numpy(str(self.path / f"{name}.safetensors"))

    def json(self, name: str) -> Any:
        return json.loads((self.path / f"{name}.json").read_text())


def save_arrays(folder: Path, arrays: dict[str, np.ndarray], name: str = "arrays") -> None:
    save_numpy(
        {k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / f"{name}.safetensors")
    )


def save_json(folder: Path, name: str, obj: Any) -> None:
    (folder / f"{name}.json").write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


class ArtifactStore:
    """Maps (stage, version, params, upstream keys) to a folder; computes each at most once."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.executions: Counter[str] = Counter()
        self._remove_abandoned_temporaries()

    def key(
        self, stage: str, version: int, params: dict[str, Any], upstream: dict[str, str]
    ) -> str:
        return stable_hash(
            {"stage": stage, "version": version, "params": params, "upstream": upstream}
        )

    def get_or_compute(
        self,
        stage: str,
        version: int,
        params: dict[str, Any],
        upstream: dict[str, str],
        compute: Callable[[Path], dict[str, Any] | None],
    ) -> Artifact:
        """Return the cached artifact, or run ``compute(tmp_folder) -> meta`` and publish it atomically."""
        key = self.key(stage, version, params, upstream)
        final = self.root / stage / key
        cached = self._load_verified(stage, key, final)
        if cached is not None:
            return cached
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f"{_TMP_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            meta = compute(tmp) or {}
            files = {
                p.relative_to(tmp).as_posix(): file_sha256(p)
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            }
            manifest = {
                "stage": stage,
                "key": key,
                "version": version,
                "params": params,
                "upstream": upstream,
                "meta": meta,
                "files": files,
            }
            (tmp / MANIFEST).write_text(
                json.dumps(manifest, indent=2, default=_json_default) + "\n"
            )
            if final.exists():  # another process finished first; keep theirs
                shutil.rmtree(tmp)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.executions[stage] += 1
        return Artifact(stage, key, final, json.loads((final / MANIFEST).read_text())["meta"])

    def _load_verified(self, stage: str, key: str, folder: Path) -> Artifact | None:
        manifest_path = folder / MANIFEST
        if not folder.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            for rel, digest in manifest["files"].items():
                if file_sha256(folder / rel) != digest:
                    raise ValueError(f"checksum mismatch in {rel}")
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("artifact %s/%s is corrupt (%s); recomputing", stage, key, err)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return Artifact(stage, key, folder, manifest.get("meta", {}))

    def _remove_abandoned_temporaries(self) -> None:
        """Delete temp folders left by processes that died mid-stage (never visible as artifacts)."""
        for tmp in self.root.glob(f"*/{_TMP_PREFIX}*"):
            parts = tmp.name.split("-")
            pid = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
            if pid is None or not pid_alive(pid):
                shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(
                    missing_ok=True
                )


def pid_alive(pid: int) -> bool:
    """Whether a process with this id still runs (its temporary folders may still be in use)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
