"""``weaklift layers``: how well each hidden state of the weak and strong models separates the task.

For every layer of every neural model in the config, a logistic-regression probe learns ground
truth on ``weak_train`` and is scored on ``val`` — never on ``test``, so picking a layer here does
not touch the numbers an experiment reports. Features come from the same all-layer features
stage as ``weaklift run``, for weak_train and val only; a run afterwards copies those rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from weaklift.config import ExperimentConfig, ModelConfig
from weaklift.models.features import resolve_layers
from weaklift.models.loading import model_fingerprint
from weaklift.models.tfidf import TFIDF_MODEL
from weaklift.stages import StageContext, splits_stage
from weaklift.stages.data import features_stage, split_features
from weaklift.store import ArtifactStore
from weaklift.tasks import load_task

# Fixed, not tuned on val (the scores compare layers, they do not select a probe). Moderate L2 on
# standardised features: lbfgs converges in ~50 steps, where C=1 takes ~200 (4x the time on facts).
PROBE_C = 0.1
PROBE_MAX_ITER = 2000


@dataclass(frozen=True)
class LayerScores:
    """One model's probe accuracy on val per hidden state (index 0 = embeddings)."""

    role: str  # "weak" or "strong"
    model: str
    accuracy: list[float]
    configured: list[int]  # the states the config's `layer` resolves to

    @property
    def best(self) -> int:
        return int(np.argmax(self.accuracy))


def layer_scores(cfg: ExperimentConfig, store: ArtifactStore | None = None) -> list[LayerScores]:
    """Probe accuracy per layer for each neural weak member and the strong model."""
    models = [("weak", m) for m in cfg.weak_members if m.model != TFIDF_MODEL]
    models.append(("strong", cfg.strong))
    # Members that differ only in seed or subset read the same features: score each model once.
    models = list(
        {(role, m.model, m.pooling, m.max_length): (role, m) for role, m in models}.values()
    )
    for _, model_cfg in models:
        model_fingerprint(model_cfg.model)  # an unknown model fails before any work
    data = load_task(cfg.task)
    store = store or ArtifactStore(Path(cfg.output_dir) / "artifacts")
    ctx = StageContext(store=store, data=data, cfg=cfg)
    splits_stage(ctx)
    # Only what the probes read: a later run extracts the other rows and copies these.
    ctx.feature_rows = np.union1d(ctx.splits["weak_train"], ctx.splits["val"])
    return [_score_model(ctx, role, model_cfg) for role, model_cfg in models]


def _score_model(ctx: StageContext, role: str, model_cfg: ModelConfig) -> LayerScores:
    num_states = features_stage(ctx, model_cfg).meta["num_states"]
    accuracy = []
    for index in range(num_states):
        one_layer = model_cfg.model_copy(update={"layer": index})
        train = _design(split_features(ctx, one_layer, "weak_train"))
        val = _design(split_features(ctx, one_layer, "val"))
        accuracy.append(_probe_accuracy(train, ctx.labels("weak_train"), val, ctx.labels("val")))
    configured = resolve_layers(model_cfg.layer, num_states)
    return LayerScores(role, model_cfg.model, accuracy, configured)


def _design(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Single texts: their features; preference pairs: the difference a − b (Bradley–Terry)."""
    if "features_b" in arrays:
        return arrays["features"] - arrays["features_b"]
    return arrays["features"]


def _probe_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> float:
    if len(np.unique(y_train)) < 2:
        return float(np.mean(y_val == y_train[0]))
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER))
    probe.fit(x_train, y_train)
    return float(np.mean(probe.predict(x_val) == y_val))


def layers_table(scores: list[LayerScores]) -> str:
    """One block per model: layer, relative depth, val accuracy; marks the best and configured."""
    lines = []
    for s in scores:
        last = len(s.accuracy) - 1
        lines.append(f"{s.role} {s.model}: GT probe on weak_train, accuracy on val")
        lines.append(f"  {'layer':>5} {'depth':>6} {'val acc':>8}")
        for index, acc in enumerate(s.accuracy):
            marks = []
            if index == s.best:
                marks.append("best")
            if index in s.configured:
                marks.append("configured")
            note = f"  <- {', '.join(marks)}" if marks else ""
            lines.append(f"  {index:>5} {index / last:>6.2f} {acc:>8.3f}{note}")
        lines.append("")
    lines.append("layer 0 = embeddings; depth = layer / last layer. Set weak.layer / strong.layer.")
    return "\n".join(lines)


def scores_json(scores: list[LayerScores]) -> list[dict]:
    return [
        {
            "role": s.role,
            "model": s.model,
            "val_accuracy": s.accuracy,
            "best": s.best,
            "configured": s.configured,
        }
        for s in scores
    ]
