"""Stages that prepare inputs: splits, generative finetuning, probe features."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from weaklift.config import ModelConfig
from weaklift.errors import WeakliftError
from weaklift.models.features import compact, extract_features, resolve_layers
from weaklift.models.genft import generative_finetune
from weaklift.models.loading import weights_key
from weaklift.splits import SPLIT_NAMES, Splits, make_splits
from weaklift.stages.context import StageContext
from weaklift.store import Artifact, file_sha256, save_arrays, stable_hash

log = logging.getLogger("weaklift")

SPLITS_VERSION = 2  # 2: weak_holdout carved from weak_train
FEATURES_VERSION = 3
GENFT_VERSION = 3  # 2: exclude_test; 3: the config's compute dtype, float32 master weights


# --- splits ---------------------------------------------------------------------------------------


def splits_stage(ctx: StageContext) -> Artifact:
    params = {
        "task": ctx.data.fingerprint(),
        "split": ctx.cfg.split.model_dump(),
        "seed": ctx.cfg.seed,
    }

    def compute(out: Path) -> dict:
        columns = getattr(ctx.data, "columns", {})  # generation data has no numeric columns
        splits = make_splits(ctx.data.labels, ctx.cfg.split, ctx.cfg.seed, ctx.data.groups, columns)
        save_arrays(out, splits.as_dict())
        return {name: len(idx) for name, idx in splits.as_dict().items()}

    artifact = ctx.store.get_or_compute("splits", SPLITS_VERSION, params, {}, compute)
    ctx.splits = Splits(**{name: artifact.arrays()[name] for name in SPLIT_NAMES})
    ctx.splits_key = artifact.key
    return artifact


# --- generative finetuning -----------------------------------------------------------------------


def genft_stage(ctx: StageContext, model_cfg: ModelConfig) -> ModelConfig:
    """Generative finetuning of a backbone; returns the config to use instead (the finetuned folder).

    Ceiling and students share the finetuned backbone, so the comparison stays fair.
    """
    if not model_cfg.genft.enabled:
        return model_cfg
    genft = model_cfg.genft
    if genft.text_file:
        path = Path(genft.text_file)
        if not path.is_file():
            raise WeakliftError(
                f"strong.genft.text_file {path} not found",
                "pass a plain-text file, one text per line",
            )
        texts = [line for line in path.read_text().splitlines() if line.strip()]
        source = {"text_file": file_sha256(path)}
    else:  # every split's inputs (test's only when exclude_test is off), never their labels
        splits = [s for s in SPLIT_NAMES if not (genft.exclude_test and s == "test")]
        texts = [t for split in splits for t in ctx.texts(split)]
        texts += [t for split in splits for t in (ctx.texts_b(split) or [])]
        source = {"splits": ctx.splits_key}
    params = {
        **weights_key(model_cfg.model, model_cfg.dtype),
        "genft": genft.model_dump(),
        "seed": ctx.cfg.seed,
    }

    def compute(out: Path) -> dict:
        log.info(
            "generative finetuning %s (%s) on %d unlabelled texts",
            model_cfg.model,
            genft.mode,
            min(len(texts), genft.max_texts),
        )
        return generative_finetune(
            model_cfg.model, texts, genft, out, ctx.cfg.seed, dtype=model_cfg.dtype
        )

    artifact = ctx.store.get_or_compute("genft", GENFT_VERSION, params, source, compute)
    log.info(
        "genft LM loss on held-out text: %.3f → %.3f",
        artifact.meta["lm_loss_before"],
        artifact.meta["lm_loss_after"],
    )
    return model_cfg.model_copy(
        update={"model": str(artifact.path / "model"), "genft": type(genft)()}
    )


# --- probe features -------------------------------------------------------------------------------


def features_stage(ctx: StageContext, model_cfg: ModelConfig) -> Artifact:
    """Pooled hidden states of EVERY layer for the task rows probes use, from one forward pass.

    Keyed by model, pooling, length, task and the row set — not by split, layer or seed — so
    changing any of those reads the cache. Rows an earlier extraction of another row set holds
    (``weaklift layers`` reads weak_train and val only) are copied, not recomputed. Arrays:
    ``rows`` (R,), ``hidden`` (R, L+1, H) with index 0 the embeddings, and ``hidden_b`` for the
    second text of preference pairs.
    """
    rows = ctx.probe_rows()
    params = {
        **weights_key(model_cfg.model, model_cfg.dtype),
        "pooling": model_cfg.pooling,
        "max_length": model_cfg.max_length,
        "task": ctx.data.fingerprint(),
        "rows": stable_hash(rows.tolist()),
    }
    memo = ("features", stable_hash(params))
    if memo in ctx.memo:  # verified once per run; every probe stage reads it several times
        return ctx.memo[memo]

    def compute(out: Path) -> dict:
        names = ["hidden", "hidden_b"] if ctx.pairwise else ["hidden"]
        arrays, done = _reuse_earlier_extractions(ctx, params, rows, names)
        missing = np.flatnonzero(~done)
        if len(missing):
            loaded = ctx.backbone(model_cfg)
            side = {"hidden": ctx.data.texts, "hidden_b": getattr(ctx.data, "texts_b", None)}
            for name in names:
                new = extract_features(
                    loaded,
                    [side[name][i] for i in rows[missing]],
                    pooling=model_cfg.pooling,  # extract_features resolves auto
                    max_length=model_cfg.max_length,
                    batch_size=model_cfg.extract_batch_size,
                    all_layers=True,
                )  # (n, L+1, H)
                if name not in arrays:
                    arrays[name] = np.empty((len(rows), *new.shape[1:]), dtype=np.float32)
                arrays[name][missing] = new
        save_arrays(out, {"rows": rows, **{name: compact(a) for name, a in arrays.items()}})
        shape = arrays["hidden"].shape
        return {"shape": list(shape), "num_states": shape[1], "reused_rows": int(done.sum())}

    artifact = ctx.store.get_or_compute("features", FEATURES_VERSION, params, {}, compute)
    ctx.memo[memo] = artifact
    return artifact


def _reuse_earlier_extractions(
    ctx: StageContext, params: dict, rows: np.ndarray, names: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Copy the rows that earlier extractions of the same model, pooling, length and task already
    hold (e.g. ``weaklift layers`` on weak_train and val before a run); returns the arrays
    (float32, allocated once something is found) and which rows they fill."""
    same = {k: v for k, v in params.items() if k != "rows"}
    arrays: dict[str, np.ndarray] = {}
    done = np.zeros(len(rows), dtype=bool)
    for earlier in ctx.store.artifacts("features", FEATURES_VERSION, same):
        theirs = earlier.arrays()
        _, mine, at = np.intersect1d(rows, theirs["rows"], return_indices=True)
        new = ~done[mine]
        mine, at = mine[new], at[new]
        if not len(mine):
            continue
        for name in names:
            if name not in arrays:
                arrays[name] = np.empty((len(rows), *theirs[name].shape[1:]), dtype=np.float32)
            arrays[name][mine] = theirs[name][at]
        done[mine] = True
        if done.all():
            break
    if done.any():
        log.info("features: %d of %d rows reused from earlier extractions", done.sum(), len(rows))
    return arrays, done


def probe_layers(ctx: StageContext, model_cfg: ModelConfig) -> list[int]:
    """``model_cfg.layer`` as hidden-state indices of this model (``middle``, -1, ... resolved)."""
    num_states = features_stage(ctx, model_cfg).meta["num_states"]
    return resolve_layers(model_cfg.layer, num_states)


def split_features(ctx: StageContext, model_cfg: ModelConfig, split: str) -> dict[str, np.ndarray]:
    """Probe inputs of one split: ``{"features": (n, H·layers)[, "features_b"]}`` float32, the
    states of ``model_cfg.layer`` (a list concatenates), rows in the split's order."""
    artifact = features_stage(ctx, model_cfg)
    if ("arrays", artifact.key) not in ctx.memo:
        ctx.memo[("arrays", artifact.key)] = artifact.arrays()
    arrays = ctx.memo[("arrays", artifact.key)]
    layers = resolve_layers(model_cfg.layer, artifact.meta["num_states"])
    wanted = np.asarray(ctx.splits[split])
    positions = np.searchsorted(arrays["rows"], wanted)
    found = positions < len(arrays["rows"])
    found[found] = arrays["rows"][positions[found]] == wanted[found]
    if not found.all():
        raise WeakliftError(
            f"split {split} has rows without probe features ({int((~found).sum())} missing)",
            "set ctx.feature_rows to the union of every split the run uses",
        )
    out = {"features": _layer_view(arrays["hidden"], positions, layers)}
    if "hidden_b" in arrays:
        out["features_b"] = _layer_view(arrays["hidden_b"], positions, layers)
    return out


def _layer_view(hidden: np.ndarray, positions: np.ndarray, layers: list[int]) -> np.ndarray:
    picked = np.take(hidden, layers, axis=1)[positions]  # (n, len(layers), H); copies little
    return picked.reshape(len(positions), -1).astype(np.float32)  # (n, len(layers)·H)
