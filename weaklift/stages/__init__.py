"""The pipeline's stages. Each reads explicit inputs and config fields and returns a cached Artifact.

A stage's cache key covers every config field it reads (``params``), its upstream artifact keys and
its version; bump a stage's ``*_VERSION`` when its computation changes.
"""

from weaklift.stages.context import StageContext, one_hot
from weaklift.stages.data import features_stage, genft_stage, splits_stage
from weaklift.stages.evaluation import evaluation_stage, ladder_evaluation_stage
from weaklift.stages.training import (
    TrainRequest,
    tfidf_member_stages,
    train_stage,
    training_rows,
    weak_labels_stage,
)

__all__ = [
    "StageContext",
    "TrainRequest",
    "evaluation_stage",
    "features_stage",
    "genft_stage",
    "ladder_evaluation_stage",
    "one_hot",
    "splits_stage",
    "tfidf_member_stages",
    "train_stage",
    "training_rows",
    "weak_labels_stage",
]
