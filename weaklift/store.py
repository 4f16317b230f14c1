"""Content-keyed artifact store: every stage output lives under ``<root>/<stage>/<key>/``.

The key hashes the stage name, its version, every config field the stage reads and the keys of its
upstream artifacts, so a changed input never reuses a stale result and an identical stage is never
recomputed. A stage writes into a temporary folder that is renamed into place only when complete;
``manifest.json`` records a SHA-256 per file, and a corrupt artifact is detected and recomputed.

Several processes (two runs, a sweep's workers, on one or many hosts) may share a store:
1. a per-key lock file (``.locks/<stage>/<key>``, kept: unlinking a lock file is racy) makes each
   artifact computed once;
2. a rename that loses a race to an identical, verified artifact counts as success;
3. an artifact is deleted only on a checksum mismatch (under its lock), never because reading it
   raised an OSError, which may be transient (NFS, a full file table);
4. temporaries are named ``.tmp-<key>-<host>-<pid>-<random>`` and removed only when that host is
   this one and that pid is dead; another host's temporaries are never touched;
5. the processes of one experiment (torchrun) act as one caller: the main process decides hit or
   miss for all, all compute, only the main one publishes (weaklift.distributed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

from weaklift import distributed

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"
_LOCKS = ".locks"
_TRASH_PREFIX = ".trash-"


class CorruptArtifact(Exception):
    """An artifact's files do not match its manifest (definitely damaged, not a read hiccup)."""


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


class Store(Protocol):
    """What a stage may ask of a store: the artifact store itself, or a wrapper that records
    (``RecordingStore``) or only looks up (a sweep's dry run)."""

    root: Path

    @property
    def executions(self) -> Counter[str]:
        """How many times each stage was computed (not found) through this store."""
        ...

    def get_or_compute(
        self,
        stage: str,
        version: int,
        params: dict[str, Any],
        upstream: dict[str, str],
        compute: Callable[[Path], dict[str, Any] | None],
    ) -> Artifact: ...

    def artifacts(self, stage: str, version: int, params: dict[str, Any]) -> list[Artifact]: ...


class ArtifactStore:
    """Maps (stage, version, params, upstream keys) to a folder; computes each at most once."""

    def __init__(self, root: str | Path, create: bool = True):
        """``create=False`` opens a store read-only: nothing (not even ``root``) is created."""
        self.root = Path(root)
        self.executions: Counter[str] = Counter()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
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
        """Return the cached artifact, or run ``compute(tmp_folder) -> meta`` and publish it atomically.

        Safe across processes: the key's lock is held while checking again, computing and
        publishing, so concurrent callers compute it once and the others read the result.
        """
        key = self.key(stage, version, params, upstream)
        final = self.root / stage / key

        def publish() -> None:
            self._compute_and_publish(stage, key, final, version, params, upstream, compute)

        if distributed.active():
            return self._get_or_compute_together(stage, key, final, publish, compute)
        try:
            return self._load_verified(stage, key, final)  # lock-free fast path for a hit
        except (FileNotFoundError, CorruptArtifact):
            pass  # absent, or corrupt: decide under the lock
        final.parent.mkdir(parents=True, exist_ok=True)
        lock = self.root / _LOCKS / stage / key
        lock.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock)):
            found = self._finished(stage, key, final)  # computed while we waited?
            if found is not None:
                return found
            publish()
        self.executions[stage] += 1
        return self._load_verified(stage, key, final)

    def _get_or_compute_together(
        self,
        stage: str,
        key: str,
        final: Path,
        publish: Callable[[], None],
        compute: Callable[[Path], dict[str, Any] | None],
    ) -> Artifact:
        """Several processes: the main one decides hit or miss for all (each must join the same
        computations), all compute, the main one publishes, the others drop their copy."""
        hit = self._finished(stage, key, final) if distributed.is_main() else None
        if distributed.broadcast(hit is not None):
            distributed.barrier()  # nobody races ahead of a stage the main process reads
            return self._load_verified(stage, key, final)
        if distributed.is_main():
            final.parent.mkdir(parents=True, exist_ok=True)
            publish()
        else:
            with tempfile.TemporaryDirectory(prefix=f"weaklift-{stage}-") as scratch:
                compute(Path(scratch))  # joins the collectives; its files are the main one's
        self.executions[stage] += 1
        distributed.barrier()  # published before anyone reads it
        return self._load_verified(stage, key, final)

    def _finished(self, stage: str, key: str, final: Path) -> Artifact | None:
        """The verified artifact, or None when absent; a corrupt one is discarded (None)."""
        try:
            return self._load_verified(stage, key, final)
        except FileNotFoundError:
            return None
        except CorruptArtifact as err:
            log.warning("artifact %s/%s is corrupt (%s); recomputing", stage, key, err)
            self._discard(final)
            return None

    def lookup(
        self, stage: str, version: int, params: dict[str, Any], upstream: dict[str, str]
    ) -> Artifact | None:
        """The finished, verified artifact, or None; creates no folder and takes no lock."""
        key = self.key(stage, version, params, upstream)
        try:
            return self._load_verified(stage, key, self.root / stage / key)
        except (FileNotFoundError, CorruptArtifact):
            return None

    def artifacts(self, stage: str, version: int, params: dict[str, Any]) -> list[Artifact]:
        """Finished, verified artifacts of ``stage`` whose params include ``params`` (sorted by
        key). For stages that can reuse part of a related result; corrupt ones are skipped."""
        found = []
        for folder in sorted((self.root / stage).glob(f"[!.]*/{MANIFEST}")):
            try:
                manifest = json.loads(folder.read_text())
                matches = manifest["version"] == version and all(
                    manifest["params"].get(k) == v for k, v in params.items()
                )
                if matches:
                    found.append(self._load_verified(stage, manifest["key"], folder.parent))
            except (OSError, ValueError, KeyError, TypeError, CorruptArtifact):
                continue  # unreadable now: simply not reused
        return found

    def _compute_and_publish(
        self,
        stage: str,
        key: str,
        final: Path,
        version: int,
        params: dict[str, Any],
        upstream: dict[str, str],
        compute: Callable[[Path], dict[str, Any] | None],
    ) -> None:
        tmp = final.parent / temp_name(key)
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
            self._publish(tmp, final, stage, key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _publish(self, tmp: Path, final: Path, stage: str, key: str) -> None:
        """Rename into place; losing the race to an identical, verified artifact is success
        (a writer that does not share our lock, e.g. another host on a filesystem without locks)."""
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            self._load_verified(stage, key, final)  # raises if theirs is damaged
            shutil.rmtree(tmp, ignore_errors=True)

    def _load_verified(self, stage: str, key: str, folder: Path) -> Artifact:
        """The artifact if every file matches the manifest. Raises FileNotFoundError when it does
        not exist, CorruptArtifact on a mismatch, and lets any other OSError propagate (a
        transient read error must never look like corruption)."""
        if not folder.is_dir():
            raise FileNotFoundError(folder)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            files = manifest["files"]
        except FileNotFoundError as err:
            raise CorruptArtifact(f"{MANIFEST} is missing") from err
        except (ValueError, KeyError, TypeError) as err:
            raise CorruptArtifact(f"{MANIFEST} is unreadable ({err})") from err
        for rel, digest in files.items():
            try:
                actual = file_sha256(folder / rel)
            except FileNotFoundError as err:
                raise CorruptArtifact(f"{rel} is missing") from err
            if actual != digest:
                raise CorruptArtifact(f"checksum mismatch in {rel}")
        return Artifact(stage, key, folder, manifest.get("meta", {}))

    @staticmethod
    def _discard(folder: Path) -> None:
        """Move a corrupt artifact aside first, so no reader ever sees it half deleted."""
        trash = folder.with_name(f"{_TRASH_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}")
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _remove_abandoned_temporaries(self) -> None:
        """Delete temp folders whose owner is known dead: this host, and a pid no longer running.
        A temp of a live pid, of another host, or of an unknown owner is left alone."""
        host = _hostname()
        for tmp in self.root.glob(f"*/{_TMP_PREFIX}*"):
            owner = temp_owner(tmp.name)
            if owner is None or owner[0] != host or pid_alive(owner[1]):
                continue
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def _hostname() -> str:
    """This host's name with dashes and dots replaced, so temp names split unambiguously."""
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "unknown"


def temp_name(key: str) -> str:
    """``.tmp-<key>-<host>-<pid>-<random>``: who owns it, so cleanup can tell if it is abandoned."""
    return f"{_TMP_PREFIX}{key}-{_hostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temp_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of a temp folder name, or None when the name does not say (an older format)."""
    parts = name.removeprefix(_TMP_PREFIX).split("-")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


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
