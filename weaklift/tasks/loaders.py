"""Read raw rows (one dict per example) from local files, folders, or the Hugging Face hub.

Every reader returns rows in file order, and a folder is read in sorted file-name order, so the
same data always yields the same rows in the same order. Bad input raises ``WeakliftError`` naming
the file and, for a missing column, the columns that are there.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from weaklift.errors import WeakliftError

Row = dict[str, Any]
Reader = Callable[[Path], list[Row]]

_PATH_FIX = "pass task.path=<a readable JSONL, JSON, CSV or Parquet file, or a folder of them>"


def _read_jsonl(path: Path) -> list[Row]:
    """JSON Lines, optionally gzipped (the HH-RLHF release ships ``*.jsonl.gz``)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _read_json(path: Path) -> list[Row]:
    """A JSON list of records (the SciQ release format)."""
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"expected a JSON list of records, got {type(records).__name__}")
    return records


def _read_csv(path: Path) -> list[Row]:
    # keep_default_na=False: a text cell "None" or "NA" stays text instead of becoming NaN.
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False).to_dict("records")


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


# File-name patterns (fnmatch) -> reader; the first matching pattern wins.
READERS: dict[str, Reader] = {
    "*.jsonl": _read_jsonl,
    "*.jsonl.gz": _read_jsonl,
    "*.json": _read_json,
    "*.csv": _read_csv,
    "*.parquet": _read_parquet,
}


def _reader_for(path: Path, readers: Mapping[str, Reader]) -> Reader | None:
    for pattern, reader in readers.items():
        if fnmatch.fnmatch(path.name, pattern):
            return reader
    return None


def require_columns(
    rows: list[Row], columns: Mapping[str, str] | Iterable[str], source: str
) -> None:
    """Fail early, naming the missing column, the file and the columns it does have.

    ``columns`` may map each column to the config field that asked for it (``task.template``), so
    the message says which setting to fix.
    """
    fields = columns if isinstance(columns, Mapping) else dict.fromkeys(columns, "")
    for column, field in fields.items():
        lacking = next((row for row in rows if column not in row), None)
        if lacking is not None:
            where = f" (named by {field})" if field else ""
            raise WeakliftError(
                f"column {column!r}{where} not found in {source}; columns present: {sorted(lacking)}",
                "point task.path at data with that column, or fix the column name",
            )


def read_file(path: str | Path, readers: Mapping[str, Reader] | None = None) -> list[Row]:
    """Rows of one file; ``readers`` adds release formats (e.g. SST-2's ``stsa.binary.*``)."""
    path = Path(path)
    all_readers = {**READERS, **(readers or {})}  # a release reader overrides a generic one
    reader = _reader_for(path, all_readers)
    if reader is None:
        raise WeakliftError(
            f"task.path {path} has an unrecognised file type (known: {', '.join(all_readers)})",
            _PATH_FIX,
        )
    if path.stat().st_size == 0:
        raise WeakliftError(f"{path} is empty", _PATH_FIX)
    try:
        rows = reader(path)
    except Exception as err:  # any parser failure means the file is unreadable or corrupt
        raise WeakliftError(
            f"could not read {path} ({type(err).__name__}: {str(err)[:200]})", _PATH_FIX
        ) from err
    return _checked_rows(rows, path)


def _checked_rows(rows: list[Any], path: Path) -> list[Row]:
    if not rows:
        raise WeakliftError(f"{path} holds no rows", _PATH_FIX)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise WeakliftError(
                f"{path}: row {i} is a {type(row).__name__}, not a record of columns", _PATH_FIX
            )
    return rows


def _data_files(folder: Path, readers: Mapping[str, Reader]) -> list[Path]:
    """Recognised files of a folder in sorted name order (readmes, licences are ignored)."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and _reader_for(p, readers)]
    if not files:
        raise WeakliftError(
            f"task.path folder {folder} has no data files (known: {', '.join(readers)})", _PATH_FIX
        )
    return files


def read_path(
    path: str | Path,
    columns: Mapping[str, str] | Iterable[str] = (),
    readers: Mapping[str, Reader] | None = None,
) -> list[Row]:
    """Rows of a file, or of a folder's files pooled; each file must have ``columns``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WeakliftError(f"task.path {path} does not exist", _PATH_FIX)
    files = [path] if path.is_file() else _data_files(path, {**(readers or {}), **READERS})
    rows: list[Row] = []
    for file in files:
        file_rows = read_file(file, readers)
        require_columns(file_rows, columns, str(file))
        rows.extend(file_rows)
    return rows


def load_hub(hub_id: str) -> list[Row]:
    """Rows of every split of a hub dataset, splits in sorted name order.

    Imported lazily: ``datasets`` is slow to import and most runs use local or built-in data.
    """
    try:
        import datasets

        splits = datasets.load_dataset(hub_id)
        return [dict(row) for name in sorted(splits) for row in splits[name]]
    except Exception as err:  # offline, unknown id, auth: all mean "get the files yourself"
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise WeakliftError(
            f"could not load {hub_id} from the Hugging Face hub ({reason})",
            "download it and pass task.path=<file or folder>",
        ) from err


def release_files(root: str | Path, pattern: str, prefer: Iterable[str] = ()) -> list[Path]:
    """Files named like ``pattern`` (fnmatch) under ``root``, recursively, in sorted path order.

    A release may be passed as the folder it unpacks to or as the folder holding its files
    (flat); both find the same files. ``prefer`` names sub-folders (e.g. CoLA's ``raw``) that, when
    they exist, are searched alone, so a release's second copy of the data (``tokenized/``) is not
    pooled twice.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise WeakliftError(f"task.path {root} does not exist", _PATH_FIX)
    if root.is_file():
        return [root] if fnmatch.fnmatch(root.name, pattern) else []
    for name in prefer:
        for folder in sorted(p for p in root.rglob(name) if p.is_dir()):
            return sorted(p for p in folder.rglob(pattern) if p.is_file())
    return sorted(p for p in root.rglob(pattern) if p.is_file())
