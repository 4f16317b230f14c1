"""``run_experiment(config) -> Results``: check the models exist, load the task, run its recipe.

Each experiment kind's graph reads top to bottom in its recipe (``weaklift.recipes``):
classification (and reward modelling) in ``recipes/classification.py``, generation in
``recipes/generation.py``, preference optimisation from pairs in ``recipes/pairs.py``.
"""

from __future__ import annotations

from pathlib import Path

from weaklift import distributed
from weaklift.config import ExperimentConfig
from weaklift.models.loading import model_fingerprint
from weaklift.models.tfidf import TFIDF_MODEL
from weaklift.recipes import recipe_for
from weaklift.recipes.results import Results
from weaklift.store import ArtifactStore, Store
from weaklift.tasks import load_task

__all__ = ["Results", "run_experiment"]


def run_experiment(cfg: ExperimentConfig, store: Store | None = None) -> Results:
    distributed.start()  # under torchrun: join the other processes (a no-op in one)
    for side in (*cfg.weak_members, cfg.strong):
        if side.model != TFIDF_MODEL:
            model_fingerprint(side.model)  # an unknown model fails here, before any work
    data = load_task(cfg.task)  # task.seed fixes the data; seed only splits and training
    store = store or ArtifactStore(Path(cfg.output_dir) / "artifacts")
    return recipe_for(cfg).run(cfg, store, data)
