"""What a run hands back and how every recipe writes it: results.json in its run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from weaklift import distributed
from weaklift.config import ExperimentConfig, ModelConfig
from weaklift.models.device import dtype_name, resolve_dtype
from weaklift.models.tfidf import TFIDF_MODEL
from weaklift.store import stable_hash, write_json_atomic


@dataclass(frozen=True)
class Results:
    """What a run produced: the results dict (results.json) and the run folder."""

    data: dict[str, Any]
    run_dir: Path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def save_results(cfg: ExperimentConfig, task_name: str, results: dict[str, Any]) -> Results:
    """results.json under ``runs/<task>-<config hash>/``, written atomically, with the compute
    dtype every model of the config resolved to on this machine (``dtypes``)."""
    results = {**results, "dtypes": resolved_dtypes(cfg)}
    run_dir = (
        Path(cfg.output_dir)
        / "runs"
        / f"{task_name}-{stable_hash(cfg.model_dump(mode='json'), 10)}"
    )
    if distributed.is_main():  # several processes compute the same results; one writes them
        write_json_atomic(run_dir / "results.json", results)
    return Results(results, run_dir)


def resolved_dtypes(cfg: BaseModel, path: str = "") -> dict[str, str]:
    """``{"strong": "bfloat16", "weak[0]": "float32", ...}``: every model config in ``cfg``
    (weak members, strong, ladder rungs, judges, ...) and the dtype its ``dtype`` means here."""
    found: dict[str, str] = {}
    if isinstance(cfg, ModelConfig):  # TF-IDF has no weights to put in a dtype
        return {} if cfg.model == TFIDF_MODEL else {path: dtype_name(resolve_dtype(cfg.dtype))}
    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        where = f"{path}.{name}" if path else name
        items = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
        for index, item in items:
            if isinstance(item, BaseModel):
                found.update(resolved_dtypes(item, where if index is None else f"{where}[{index}]"))
    return found
