"""The pipeline's stages. Each reads explicit inputs and config fields and returns a cached Artifact.

A stage's cache key covers every config field it reads (``params``), its upstream artifact keys and
its version; bump ``VERSION`` of a stage when its computation changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from weaklift.config import ExperimentConfig, MethodSpec, ModelConfig
from weaklift.errors import WeakliftError
from weaklift.methods import Xent, build_method, method_params
from weaklift.metrics import agreement, classification_summary, pgr, pgr_bootstrap_ci
from weaklift.models.classifier import (
    LinearHead,
    PairwiseRewardHead,
    build_backbone_classifier,
    load_trainable,
    save_trainable,
)
from weaklift.models.features import extract_features
from weaklift.models.genft import generative_finetune
from weaklift.models.loading import load_backbone, model_fingerprint
from weaklift.models.tfidf import TFIDF_MODEL, TfidfClassifier
from weaklift.splits import SPLIT_NAMES, Splits, make_splits
from weaklift.store import Artifact, ArtifactStore, file_sha256, save_arrays, save_json, stable_hash
from weaklift.tasks.base import ClassificationData, PreferenceData
from weaklift.training.batches import FeatureBatcher, SubsetBatcher, TokenBatcher
from weaklift.training.classifier import (
    LoopConfig,
    predict_proba,
    predict_uncertainty,
    train_classifier,
)

log = logging.getLogger("weaklift")

SPLITS_VERSION = 1
FEATURES_VERSION = 2
TRAIN_VERSION = 2
LABELS_VERSION = 1
EVAL_VERSION = 2


@dataclass
class StageContext:
    """What every stage may read: the store, the task data, the experiment config, loaded backbones."""

    store: ArtifactStore
    data: ClassificationData
    cfg: ExperimentConfig
    splits: Splits | None = None
    splits_key: str = ""
    _backbones: dict = field(default_factory=dict)

    @property
    def pairwise(self) -> bool:
        """Preference task: every example is a pair and models are reward models."""
        return isinstance(self.data, PreferenceData)

    def backbone(self, model: str):
        """Load each backbone at most once per run, and only when a stage actually needs it."""
        if model not in self._backbones:
            log.info("loading %s", model)
            loaded = load_backbone(model)
            loaded.tokenizer.truncation_side = self.data.extra.get("truncation_side", "right")
            self._backbones[model] = loaded
        return self._backbones[model]

    def texts(self, split: str) -> list[str]:
        return [self.data.texts[i] for i in self.splits[split]]

    def texts_b(self, split: str) -> list[str] | None:
        """The second text of each pair (preference tasks), else None."""
        if not self.pairwise:
            return None
        return [self.data.texts_b[i] for i in self.splits[split]]

    def labels(self, split: str) -> np.ndarray:
        return self.data.labels[self.splits[split]]


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


# --- splits ---------------------------------------------------------------------------------------


def splits_stage(ctx: StageContext) -> Artifact:
    params = {"task": ctx.data.fingerprint(), "split": ctx.cfg.split.model_dump(), "seed": ctx.cfg.seed}

    def compute(out: Path) -> dict:
        splits = make_splits(ctx.data.labels, ctx.cfg.split, ctx.cfg.seed)
        save_arrays(out, splits.as_dict())
        return {name: len(idx) for name, idx in splits.as_dict().items()}

    artifact = ctx.store.get_or_compute("splits", SPLITS_VERSION, params, {}, compute)
    ctx.splits = Splits(**{name: artifact.arrays()[name] for name in SPLIT_NAMES})
    ctx.splits_key = artifact.key
    return artifact


# --- generative finetuning -----------------------------------------------------------------------


GENFT_VERSION = 1


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
            raise WeakliftError(f"strong.genft.text_file {path} not found", "pass a plain-text file, one text per line")
        texts = [line for line in path.read_text().splitlines() if line.strip()]
        source = {"text_file": file_sha256(path)}
    else:  # every split's inputs, never their labels
        texts = [t for split in SPLIT_NAMES for t in ctx.texts(split)]
        texts += [t for split in SPLIT_NAMES for t in (ctx.texts_b(split) or [])]
        source = {"splits": ctx.splits_key}
    params = {"model": model_fingerprint(model_cfg.model), "genft": genft.model_dump(), "seed": ctx.cfg.seed}

    def compute(out: Path) -> dict:
        log.info("generative finetuning %s (%s) on %d unlabelled texts", model_cfg.model, genft.mode, min(len(texts), genft.max_texts))
        return generative_finetune(model_cfg.model, texts, genft, out, ctx.cfg.seed)

    artifact = ctx.store.get_or_compute("genft", GENFT_VERSION, params, source, compute)
    log.info("genft LM loss on held-out text: %.3f → %.3f", artifact.meta["lm_loss_before"], artifact.meta["lm_loss_after"])
    return model_cfg.model_copy(update={"model": str(artifact.path / "model"), "genft": type(genft)()})


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
                pooling=_pooling(model_cfg, loaded),
                max_length=model_cfg.max_length,
                batch_size=model_cfg.extract_batch_size,
            )
            for name, split_texts in texts.items()
            if split_texts is not None
        }
        save_arrays(out, arrays)
        return {"shape": list(arrays["features"].shape)}

    return ctx.store.get_or_compute("features", FEATURES_VERSION, params, {"splits": ctx.splits_key}, compute)


def _pooling(model_cfg: ModelConfig, loaded) -> str:
    from weaklift.models.pooling import resolve_pooling

    return resolve_pooling(model_cfg.pooling, loaded.is_decoder)


# --- training -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainRequest:
    """One model to train: on which split, against which targets, selected on which labels."""

    stage: str  # "weak_model", "ceiling" or "student"
    model_cfg: ModelConfig
    train_split: str
    targets: np.ndarray  # (N, K) soft targets for train_split
    val_labels: np.ndarray  # (M,) labels for model selection on val
    targets_key: str  # upstream artifact the targets come from
    method: MethodSpec | None = None
    predict_splits: tuple[str, ...] = ()


def _loop_config(ctx: StageContext, model_cfg: ModelConfig) -> LoopConfig:
    mode_cfg = ctx.cfg.train.probe if model_cfg.mode == "probe" else ctx.cfg.train.finetune
    return LoopConfig(
        epochs=mode_cfg.epochs,
        batch_size=mode_cfg.batch_size,
        micro_batch_size=mode_cfg.micro_batch_size,
        lr=mode_cfg.lr,
        weight_decay=mode_cfg.weight_decay,
        select_best=ctx.cfg.train.select_best,
        seed=ctx.cfg.seed if model_cfg.seed is None else model_cfg.seed,
    )


def _model_params(ctx: StageContext, model_cfg: ModelConfig) -> dict:
    params = {
        "model": model_fingerprint(model_cfg.model),
        "mode": model_cfg.mode,
        "pooling": model_cfg.pooling,
        "max_length": model_cfg.max_length,
        "loop": _loop_config(ctx, model_cfg).__dict__,
        "subset": model_cfg.subset,
        "num_classes": ctx.data.num_classes,
    }
    if model_cfg.mode == "lora":
        params["lora"] = model_cfg.lora.model_dump()
    return params


class _Inputs:
    """Builds the classifier and its batchers for one model config, in probe or finetune mode."""

    def __init__(self, ctx: StageContext, model_cfg: ModelConfig):
        self.ctx, self.model_cfg = ctx, model_cfg
        self.probe = model_cfg.mode == "probe"

    def upstream(self, splits: tuple[str, ...]) -> dict[str, str]:
        if not self.probe:
            return {}
        return {f"features/{s}": features_stage(self.ctx, self.model_cfg, s).key for s in splits}

    def batcher(self, split: str):
        if self.probe:
            arrays = features_stage(self.ctx, self.model_cfg, split).arrays()
            return FeatureBatcher(arrays["features"], arrays.get("features_b"))
        loaded = self.ctx.backbone(self.model_cfg.model)
        return TokenBatcher(loaded.tokenizer, self.ctx.texts(split), self.model_cfg.max_length, self.ctx.texts_b(split))

    def new_model(self, seed: int, train_split: str) -> torch.nn.Module:
        torch.manual_seed(seed)
        if self.probe:
            arrays = features_stage(self.ctx, self.model_cfg, train_split).arrays()
            if self.ctx.pairwise:  # standardise with both sides' features
                both = torch.as_tensor(np.concatenate([arrays["features"], arrays["features_b"]]))
                return PairwiseRewardHead(both.shape[1], both)
            train_features = torch.as_tensor(arrays["features"])
            return LinearHead(train_features.shape[1], self.ctx.data.num_classes, train_features)
        # A fresh copy of the pretrained weights for every finetuned model.
        self.ctx._backbones.pop(self.model_cfg.model, None)
        loaded = self.ctx.backbone(self.model_cfg.model)
        return build_backbone_classifier(loaded, self.model_cfg, self.ctx.data.num_classes, self.ctx.pairwise)


def train_stage(ctx: StageContext, req: TrainRequest) -> Artifact:
    """Train one classifier; save its trainable weights and its predictions on ``predict_splits``."""
    inputs = _Inputs(ctx, req.model_cfg)
    needed = tuple(dict.fromkeys((req.train_split, "val", *req.predict_splits)))
    params = {
        **_model_params(ctx, req.model_cfg),
        "train_split": req.train_split,
        "method": method_params(req.method) if req.method else "gt_xent",
        "predict": list(req.predict_splits),
    }
    upstream = {"splits": ctx.splits_key, "targets": req.targets_key, **inputs.upstream(needed)}

    def compute(out: Path) -> dict:
        loop = _loop_config(ctx, req.model_cfg)
        model = inputs.new_model(loop.seed, req.train_split)
        method = build_method(req.method) if req.method else Xent()
        name = req.method.label if req.method else req.stage
        source = f"weak labels, method {name}" if req.method else f"ground truth of {req.train_split}"
        log.info("training %s %s (%s) on %s", req.stage, req.model_cfg.model, req.model_cfg.mode, source)
        rows = training_rows(len(req.targets), req.model_cfg.subset, loop.seed)
        history = train_classifier(
            model,
            SubsetBatcher(inputs.batcher(req.train_split), rows),
            req.targets[rows],
            method,
            loop,
            val_data=inputs.batcher("val"),
            val_labels=req.val_labels,
            desc=f"{req.stage} {name}",
        )
        save_trainable(model, out / "weights.safetensors")
        predictions = {s: predict_proba(model, inputs.batcher(s), method) for s in req.predict_splits}
        if hasattr(method, "uncertainty"):  # evidential students: K/S per example
            for s in req.predict_splits:
                predictions[f"{s}_uncertainty"] = predict_uncertainty(model, inputs.batcher(s), method)
        if predictions:
            save_arrays(out, predictions, name="predictions")
        return {"history": history.__dict__}

    return ctx.store.get_or_compute(req.stage, TRAIN_VERSION, params, upstream, compute)


def training_rows(n: int, subset: str, seed: int) -> np.ndarray:
    """All rows, or a bootstrap resample (with replacement) seeded by the model's own seed."""
    if subset == "bootstrap":
        return np.sort(np.random.default_rng(seed).integers(0, n, size=n))
    return np.arange(n)


def tfidf_member_stages(ctx: StageContext, member: ModelConfig) -> tuple[Artifact, Artifact]:
    """The non-neural weak member: fit TF-IDF + logistic regression on GT(weak_train), label the rest."""
    if ctx.pairwise:
        raise WeakliftError("weak member tfidf scores single texts, not preference pairs", "use a neural weak model")
    seed = ctx.cfg.seed if member.seed is None else member.seed
    params = {"model": TFIDF_MODEL, "subset": member.subset, "seed": seed, "num_classes": ctx.data.num_classes}

    def fit(out: Path) -> dict:
        rows = training_rows(len(ctx.splits["weak_train"]), member.subset, seed)
        texts = ctx.texts("weak_train")
        log.info("training weak_model tfidf on ground truth of weak_train")
        model = TfidfClassifier(num_classes=ctx.data.num_classes, seed=seed)
        model.fit([texts[i] for i in rows], ctx.labels("weak_train")[rows]).save(out)
        return {}

    weak_model = ctx.store.get_or_compute("weak_model", TRAIN_VERSION, params, {"splits": ctx.splits_key}, fit)

    def label(out: Path) -> dict:
        model = TfidfClassifier.load(weak_model.path, ctx.data.num_classes)
        save_arrays(out, {s: model.predict_proba(ctx.texts(s)) for s in ("transfer", "val", "test")})
        return {}

    labels = ctx.store.get_or_compute("weak_labels", LABELS_VERSION, {}, {"weak_model": weak_model.key}, label)
    return weak_model, labels


def weak_labels_stage(ctx: StageContext, weak_model: Artifact, model_cfg: ModelConfig) -> Artifact:
    """The weak supervisor's soft labels on transfer, val and test (its test accuracy comes from here)."""
    inputs = _Inputs(ctx, model_cfg)
    label_splits = ("transfer", "val", "test")
    upstream = {"weak_model": weak_model.key, **inputs.upstream(label_splits)}

    def compute(out: Path) -> dict:
        model = inputs.new_model(seed=0, train_split="weak_train")
        load_trainable(model, weak_model.path / "weights.safetensors")  # overwrites the fresh init
        save_arrays(out, {s: predict_proba(model, inputs.batcher(s)) for s in label_splits})
        return {}

    return ctx.store.get_or_compute("weak_labels", LABELS_VERSION, {}, upstream, compute)


# --- evaluation -----------------------------------------------------------------------------------


def evaluation_stage(
    ctx: StageContext, members: dict[str, Artifact], ceiling: Artifact, students: dict[str, Artifact]
) -> Artifact:
    """Accuracy/AUROC/ECE for every weak member, the ensemble, the ceiling and each student;
    PGR with a bootstrap CI (from the ensemble and, with several members, from the best member)."""
    params = {"bootstrap_samples": ctx.cfg.bootstrap_samples, "seed": ctx.cfg.seed, "students": sorted(students)}
    upstream = {
        "splits": ctx.splits_key,
        **{f"weak_labels/{label}": art.key for label, art in members.items()},
        "ceiling": ceiling.key,
        **{f"student/{label}": art.key for label, art in students.items()},
    }

    def compute(out: Path) -> dict:
        labels = ctx.labels("test")
        member_probs = np.stack([art.arrays()["test"] for art in members.values()], axis=1)  # (N, M, K)
        weak_probs = member_probs.mean(axis=1)  # the ensemble's mean; the single member when M = 1
        weak = classification_summary(weak_probs, labels)
        member_summaries = {
            label: classification_summary(member_probs[:, m], labels) for m, label in enumerate(members)
        }
        best = max(range(len(members)), key=lambda m: member_summaries[list(members)[m]]["accuracy"])
        ceiling_probs = ceiling.arrays("predictions")["test"]
        ceil = classification_summary(ceiling_probs, labels)
        references = {"": weak_probs}
        if len(members) > 1:
            references["_best_member"] = member_probs[:, best]
        student_results = {
            label: _student_metrics(ctx, art.arrays("predictions"), labels, references, ceiling_probs, weak_probs)
            for label, art in students.items()
        }
        metrics = {
            "num_test": int(len(labels)),
            "weak": weak,
            "weak_members": member_summaries,
            "ensemble": _ensemble_metrics(member_probs, labels) if len(members) > 1 else {},
            "best_member": list(members)[best],
            "ceiling": ceil,
            "students": student_results,
        }
        save_json(out, "metrics", metrics)
        return {}

    return ctx.store.get_or_compute("evaluation", EVAL_VERSION, params, upstream, compute)


def ladder_evaluation_stage(
    ctx: StageContext,
    members: dict[str, Artifact],
    ceiling: Artifact,
    students: dict[str, Artifact],
    ladders: dict[str, list[Artifact]],
) -> Artifact:
    """Per method: every rung's test metrics and PGR, and the direct weak → strong student beside them."""
    upstream = {
        "evaluation_inputs": stable_hash([a.key for a in (*members.values(), ceiling, *students.values())]),
        **{f"ladder/{label}": stable_hash([r.key for r in rungs]) for label, rungs in ladders.items()},
    }
    params = {"bootstrap_samples": ctx.cfg.bootstrap_samples, "seed": ctx.cfg.seed}

    def compute(out: Path) -> dict:
        labels = ctx.labels("test")
        weak_probs = np.stack([a.arrays()["test"] for a in members.values()], axis=1).mean(axis=1)
        weak_correct = weak_probs.argmax(1) == labels
        ceiling_correct = ceiling.arrays("predictions")["test"].argmax(1) == labels
        result = {}
        for label, rungs in ladders.items():
            rows = []
            for rung_cfg, rung in zip(ctx.cfg.ladder[1:], rungs, strict=True):
                probs = rung.arrays("predictions")["test"]
                correct = probs.argmax(1) == labels
                summary = classification_summary(probs, labels)
                rows.append({
                    "model": rung_cfg.label,
                    **summary,
                    "pgr": pgr(summary["accuracy"], float(weak_correct.mean()), float(ceiling_correct.mean())),
                    "pgr_ci": list(pgr_bootstrap_ci(weak_correct, correct, ceiling_correct, ctx.cfg.bootstrap_samples, ctx.cfg.seed)),
                })
            direct = students[label].arrays("predictions")["test"]
            direct_summary = classification_summary(direct, labels)
            result[label] = {
                "rungs": rows,
                "direct": {
                    **direct_summary,
                    "pgr": pgr(direct_summary["accuracy"], float(weak_correct.mean()), float(ceiling_correct.mean())),
                },
            }
        save_json(out, "ladder", result)
        return {}

    return ctx.store.get_or_compute("ladder_evaluation", EVAL_VERSION, params, upstream, compute)


def _ensemble_metrics(member_probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy/AUROC of each way of combining the members into one label."""
    from weaklift.methods.ensemble import combine

    stacked = torch.as_tensor(member_probs)
    return {
        how: classification_summary(combine(stacked, how).numpy(), labels) for how in ("mean", "vote", "logpool")
    }


def _student_metrics(
    ctx: StageContext,
    predictions: dict[str, np.ndarray],
    labels: np.ndarray,
    references: dict[str, np.ndarray],
    ceiling_probs: np.ndarray,
    weak_probs: np.ndarray,
) -> dict:
    probs = predictions["test"]
    correct = probs.argmax(1) == labels
    ceiling_correct = ceiling_probs.argmax(1) == labels
    ceiling_accuracy = float(ceiling_correct.mean())
    result = classification_summary(probs, labels)
    for suffix, reference in references.items():
        reference_correct = reference.argmax(1) == labels
        result[f"pgr{suffix}"] = pgr(result["accuracy"], float(reference_correct.mean()), ceiling_accuracy)
        result[f"pgr{suffix}_ci"] = list(
            pgr_bootstrap_ci(reference_correct, correct, ceiling_correct, ctx.cfg.bootstrap_samples, ctx.cfg.seed)
        )
    result["agreement"] = agreement(probs, weak_probs)
    uncertainty = predictions.get("test_uncertainty")
    if uncertainty is None:  # normalised entropy for softmax students
        uncertainty = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(1) / np.log(probs.shape[1])
    result["uncertainty_correct"] = float(uncertainty[correct].mean()) if correct.any() else float("nan")
    result["uncertainty_incorrect"] = float(uncertainty[~correct].mean()) if (~correct).any() else float("nan")
    return result
