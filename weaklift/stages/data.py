"""Stages that prepare inputs: splits, generative finetuning, probe features."""

from __future__ import annotations

import logging
from pathlib import Path

from weaklift.config import ModelConfig
from weaklift.errors import WeakliftError
from weaklift.models.features import extract_features
from weaklift.models.genft import generative_finetune
from weaklift.models.loading import model_fingerprint
from weaklift.splits import SPLIT_NAMES, Splits, make_splits
from weaklift.stages.context import StageContext
from weaklift.store import Artifact, file_sha256, save_arrays

log = logging.getLogger("weaklift")

SPLITS_VERSION = 1
FEATURES_VERSION = 2
GENFT_VERSION = 1


# --- splits ---------------------------------------------------------------------------------------


def splits_stage(ctx: StageContext) -> Artifact:
    params = {
        "task": ctx.data.fingerprint(),
        "split": ctx.cfg.split.model_dump(),
        "seed": ctx.cfg.seed,
    }

    def compute(out: Path) -> dict:
        splits = make_splits(ctx.data.labels, ctx.cfg.split, ctx.cfg.seed, ctx.data.groups)
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
    else:  # every split's inputs, never their labels
        texts = [t for split in SPLIT_NAMES for t in ctx.texts(split)]
        texts += [t for split in SPLIT_NAMES for t in (ctx.texts_b(split) or [])]
        source = {"splits": ctx.splits_key}
    params = {
        "model": model_fingerprint(model_cfg.model),
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
        return generative_finetune(model_cfg.model, texts, genft, out, ctx.cfg.seed)

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


def features_stage(ctx: StageContext, model_cfg: ModelConfig, split: str) -> Artifact:
    """Pooled backbone features of one split, extracted once per (model, pooling, length, split)."""
    params = {
        "model": model_fingerprint(model_cfg.model),
        "pooling": model_cfg.pooling,
        "max_length": model_cfg.max_length,
        "split": split,
    }

    def compute(out: Path) -> dict:
        loaded = ctx.backbone(model_cfg.model)
        texts = {"features": ctx.texts(split), "features_b": ctx.texts_b(split)}
        arrays = {
            name: extract_features(
                loaded,
                split_texts,
                pooling=model_cfg.pooling,  # extract_features resolves auto
                max_length=model_cfg.max_length,
                batch_size=model_cfg.extract_batch_size,
            )
            for name, split_texts in texts.items()
            if split_texts is not None
        }
        save_arrays(out, arrays)
        return {"shape": list(arrays["features"].shape)}

    return ctx.store.get_or_compute(
        "features", FEATURES_VERSION, params, {"splits": ctx.splits_key}, compute
    )
