"""Stages that train models: weak members (neural or TF-IDF), ceiling, students, ladder rungs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from weaklift import distributed
from weaklift.config import MethodSpec, ModelConfig
from weaklift.errors import WeakliftError
from weaklift.methods import Xent, build_method, method_params
from weaklift.models.classifier import (
    LinearHead,
    PairwiseRewardHead,
    build_backbone_classifier,
    load_trainable,
    release_backbone,
    save_trainable,
)
from weaklift.models.loading import weights_key
from weaklift.models.tfidf import TFIDF_MODEL, TfidfClassifier
from weaklift.stages.context import StageContext
from weaklift.stages.data import features_stage, probe_layers, split_features
from weaklift.store import Artifact, save_arrays, stable_hash
from weaklift.training.batches import FeatureBatcher, SubsetBatcher, TokenBatcher
from weaklift.training.classifier import (
    LoopConfig,
    predict_proba,
    predict_uncertainty,
    train_classifier,
)

log = logging.getLogger("weaklift")

TRAIN_VERSION = 3  # 3: train.select, val_split, training row subsets (cross-fitting)
LABELS_VERSION = 2  # 2: weak members also label weak_holdout
LABEL_SPLITS = ("weak_holdout", "transfer", "val", "test")


# --- training -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainRequest:
    """One model to train: on which split, against which targets, selected on which labels."""

    stage: str  # "weak_model", "ceiling", "student", "control" or "rung"
    model_cfg: ModelConfig
    train_split: str
    targets: np.ndarray  # (N, K) soft targets for train_split, or (N, M, K) for multi-weak methods
    val_labels: np.ndarray  # (V,) labels of val_split (selection with train.select=weak_agreement)
    targets_key: str  # upstream artifact the targets come from
    method: MethodSpec | None = None
    predict_splits: tuple[str, ...] = ()
    val_split: str = "val"  # weak models check themselves on weak_holdout, never on val
    rows: np.ndarray | None = None  # positions within train_split to train on (default: all)


def loop_config(ctx: StageContext, model_cfg: ModelConfig) -> LoopConfig:
    mode_cfg = ctx.cfg.train.probe if model_cfg.mode == "probe" else ctx.cfg.train.finetune
    return LoopConfig(
        epochs=mode_cfg.epochs,
        batch_size=mode_cfg.batch_size,
        micro_batch_size=mode_cfg.micro_batch_size,
        lr=mode_cfg.lr,
        weight_decay=mode_cfg.weight_decay,
        select_best=ctx.cfg.train.select == "weak_agreement",
        seed=model_seed(ctx, model_cfg),
        group_by_length=getattr(mode_cfg, "group_by_length", False),  # probes read features
    )


def model_seed(ctx: StageContext, model_cfg: ModelConfig) -> int:
    """The run's seed, or the model's own seed shifted by how far this run seed is from the first,
    so a member with its own seed still gets a new init and data order on every seed."""
    if model_cfg.seed is None:
        return ctx.cfg.seed
    return model_cfg.seed + ctx.seed_offset


def _model_params(ctx: StageContext, model_cfg: ModelConfig) -> dict:
    params = {
        **weights_key(model_cfg.model, model_cfg.dtype),
        "mode": model_cfg.mode,
        "pooling": model_cfg.pooling,
        "max_length": model_cfg.max_length,
        "loop": loop_config(ctx, model_cfg).__dict__,
        "subset": model_cfg.subset,
        "num_classes": ctx.data.num_classes,
    }
    if model_cfg.mode == "lora":
        params["lora"] = model_cfg.lora.model_dump()
    if model_cfg.mode != "probe":  # probe keys carry the resolved layer with their features
        params["layer"] = model_cfg.layer
    return params


class _Inputs:
    """Builds the classifier and its batchers for one model config, in probe or finetune mode."""

    def __init__(self, ctx: StageContext, model_cfg: ModelConfig):
        self.ctx, self.model_cfg = ctx, model_cfg
        self.probe = model_cfg.mode == "probe"

    def upstream(self) -> dict[str, str]:
        """Probe: the features artifact (all layers, all rows) and the resolved layer it reads."""
        if not self.probe:
            return {}
        layers = probe_layers(self.ctx, self.model_cfg)
        return {"features": features_stage(self.ctx, self.model_cfg).key, "layer": str(layers)}

    def batcher(self, split: str):
        if self.probe:
            arrays = split_features(self.ctx, self.model_cfg, split)
            return FeatureBatcher(arrays["features"], arrays.get("features_b"))
        return TokenBatcher(
            self.ctx.tokenizer(self.model_cfg.model),
            self.ctx.texts(split),
            self.model_cfg.max_length,
            self.ctx.texts_b(split),
        )

    @contextmanager
    def new_model(self, seed: int, train_split: str) -> Iterator[torch.nn.Module]:
        """A freshly initialised classifier for the length of a stage. lora/full: its backbone
        is released when the stage ends (adapters out of the shared base; full weights freed)."""
        if self.probe:
            torch.manual_seed(seed)
            arrays = split_features(self.ctx, self.model_cfg, train_split)
            if self.ctx.pairwise:  # standardise with both sides' features
                both = torch.as_tensor(np.concatenate([arrays["features"], arrays["features_b"]]))
                yield PairwiseRewardHead(both.shape[1], both)
                return
            train_features = torch.as_tensor(arrays["features"])
            yield LinearHead(train_features.shape[1], self.ctx.data.num_classes, train_features)
            return
        with self.ctx.trainable_backbone(self.model_cfg) as loaded:
            torch.manual_seed(seed)
            model = build_backbone_classifier(
                loaded, self.model_cfg, self.ctx.data.num_classes, self.ctx.pairwise
            )
            if self.model_cfg.fsdp:
                distributed.shard(model, layers_of=model.backbone)
            try:
                yield model
            finally:
                release_backbone(model)


def train_stage(ctx: StageContext, req: TrainRequest) -> Artifact:
    """Train one classifier; save its trainable weights and its predictions on ``predict_splits``."""
    inputs = _Inputs(ctx, req.model_cfg)
    params = {
        **_model_params(ctx, req.model_cfg),
        "train_split": req.train_split,
        "val_split": req.val_split,
        "rows": None if req.rows is None else stable_hash(req.rows.tolist()),
        "method": method_params(req.method),
        "predict": list(req.predict_splits),
    }
    upstream = {"splits": ctx.splits_key, "targets": req.targets_key, **inputs.upstream()}

    def train_and_predict(model: torch.nn.Module, loop: LoopConfig, out: Path) -> dict:
        method = build_method(req.method) if req.method else Xent()
        name = req.method.label if req.method else req.stage
        source = (
            f"weak labels, method {name}" if req.method else f"ground truth of {req.train_split}"
        )
        log.info(
            "training %s %s (%s) on %s", req.stage, req.model_cfg.model, req.model_cfg.mode, source
        )
        allowed = np.arange(len(req.targets)) if req.rows is None else req.rows
        rows = allowed[training_rows(len(allowed), req.model_cfg.subset, loop.seed)]
        history = train_classifier(
            model,
            SubsetBatcher(inputs.batcher(req.train_split), rows),
            req.targets[rows],
            method,
            loop,
            val_data=inputs.batcher(req.val_split),
            val_labels=req.val_labels,
            desc=f"{req.stage} {name}",
        )
        save_trainable(model, out / "weights.safetensors")
        predictions = {
            s: predict_proba(model, inputs.batcher(s), method) for s in req.predict_splits
        }
        if hasattr(method, "uncertainty"):  # evidential students: K/S per example
            for s in req.predict_splits:
                predictions[f"{s}_uncertainty"] = predict_uncertainty(
                    model, inputs.batcher(s), method
                )
        if predictions:
            save_arrays(out, predictions, name="predictions")
        return {"history": history.__dict__}

    def compute(out: Path) -> dict:
        loop = loop_config(ctx, req.model_cfg)
        with inputs.new_model(loop.seed, req.train_split) as model:
            return train_and_predict(model, loop, out)

    return ctx.store.get_or_compute(req.stage, TRAIN_VERSION, params, upstream, compute)


def crossfit_stage(ctx: StageContext, req: TrainRequest) -> Artifact:
    """Cross-fitting: two models, each trained on one seeded half of ``req.train_split``; each
    labels the half it never saw. Other splits get the mean of both models' probabilities.

    Used for ladder rungs, whose labels on the training split feed the next rung.
    """
    n = len(req.targets)
    order = np.random.default_rng(loop_config(ctx, req.model_cfg).seed).permutation(n)
    halves = (np.sort(order[: n // 2]), np.sort(order[n // 2 :]))
    folds = [train_stage(ctx, replace(req, rows=half)) for half in halves]

    def compute(out: Path) -> dict:
        a, b = (fold.arrays("predictions") for fold in folds)
        combined = {}
        for split in req.predict_splits:
            if (
                split == req.train_split
            ):  # out-of-fold: each half from the model that did not see it
                combined[split] = np.empty_like(a[split])
                combined[split][halves[1]] = a[split][halves[1]]
                combined[split][halves[0]] = b[split][halves[0]]
            else:
                combined[split] = (a[split] + b[split]) / 2
        save_arrays(out, combined, name="predictions")
        return {}

    upstream = {f"fold{i}": fold.key for i, fold in enumerate(folds)}
    params = {"predict": list(req.predict_splits), "train_split": req.train_split}
    return ctx.store.get_or_compute("crossfit", TRAIN_VERSION, params, upstream, compute)


def training_rows(n: int, subset: str, seed: int) -> np.ndarray:
    """All rows, or a bootstrap resample (with replacement) seeded by the model's own seed."""
    if subset == "bootstrap":
        return np.sort(np.random.default_rng(seed).integers(0, n, size=n))
    return np.arange(n)


def tfidf_member_stages(ctx: StageContext, member: ModelConfig) -> tuple[Artifact, Artifact]:
    """The non-neural weak member: fit TF-IDF + logistic regression on GT(weak_train), label the rest."""
    if ctx.pairwise:
        raise WeakliftError(
            "weak member tfidf scores single texts, not preference pairs", "use a neural weak model"
        )
    seed = model_seed(ctx, member)
    params = {
        "model": TFIDF_MODEL,
        "subset": member.subset,
        "seed": seed,
        "num_classes": ctx.data.num_classes,
    }

    def fit(out: Path) -> dict:
        rows = training_rows(len(ctx.splits["weak_train"]), member.subset, seed)
        texts = ctx.texts("weak_train")
        log.info("training weak_model tfidf on ground truth of weak_train")
        model = TfidfClassifier(num_classes=ctx.data.num_classes, seed=seed)
        model.fit([texts[i] for i in rows], ctx.labels("weak_train")[rows]).save(out)
        return {}

    weak_model = ctx.store.get_or_compute(
        "weak_model", TRAIN_VERSION, params, {"splits": ctx.splits_key}, fit
    )

    def label(out: Path) -> dict:
        model = TfidfClassifier.load(weak_model.path, ctx.data.num_classes)
        save_arrays(out, {s: model.predict_proba(ctx.texts(s)) for s in LABEL_SPLITS})
        return {}

    labels = ctx.store.get_or_compute(
        "weak_labels", LABELS_VERSION, {}, {"weak_model": weak_model.key}, label
    )
    return weak_model, labels


def weak_labels_stage(ctx: StageContext, weak_model: Artifact, model_cfg: ModelConfig) -> Artifact:
    """The weak supervisor's soft labels on weak_holdout, transfer, val and test.

    weak_holdout gives its weak-side accuracy (best member, dynamic weights); test its reported one.
    """
    inputs = _Inputs(ctx, model_cfg)
    upstream = {"weak_model": weak_model.key, "splits": ctx.splits_key, **inputs.upstream()}

    def compute(out: Path) -> dict:
        with inputs.new_model(seed=0, train_split="weak_train") as model:
            load_trainable(model, weak_model.path / "weights.safetensors")  # replaces the init
            save_arrays(out, {s: predict_proba(model, inputs.batcher(s)) for s in LABEL_SPLITS})
        return {}

    return ctx.store.get_or_compute("weak_labels", LABELS_VERSION, {}, upstream, compute)
