"""The pipeline's stages. Each reads explicit inputs and config fields and returns a cached Artifact.

A stage's cache key covers every config field it reads (``params``), its upstream artifact keys and
its version; bump a stage's ``*_VERSION`` when its computation changes.
"""

from weaklift.stages.context import StageContext, one_hot
from weaklift.stages.data import features_stage, genft_stage, split_features, splits_stage
from weaklift.stages.evaluation import (
    SeedModels,
    bucket_evaluation_stage,
    evaluation_stage,
    summarise_seeds,
)
from weaklift.stages.training import (
    TrainRequest,
    crossfit_stage,
    tfidf_member_stages,
    train_stage,
    training_rows,
    weak_labels_stage,
)

__all__ = [
    "SeedModels",
    "StageContext",
    "TrainRequest",
    "bucket_evaluation_stage",
    "crossfit_stage",
    "evaluation_stage",
    "features_stage",
    "genft_stage",
    "one_hot",
    "split_features",
    "splits_stage",
    "summarise_seeds",
    "tfidf_member_stages",
    "train_stage",
    "training_rows",
    "weak_labels_stage",
]
