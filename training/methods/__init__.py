"""Seed methods of METHODS.md, one file each: §1 ``generalized_contrastive``, §2 ``meta_training_sets``."""

from training.methods.generalized_contrastive import (
    AngularPrototypicalLoss,
    GeneralizedContrastiveLoss,
    keys_for_batch,
    normalized_target_matrix,
    target_matrix,
)
from training.methods.meta_training_sets import MetaTrainingSetLoss, ridge_classifier

__all__ = [
    "AngularPrototypicalLoss",
    "GeneralizedContrastiveLoss",
    "MetaTrainingSetLoss",
    "keys_for_batch",
    "normalized_target_matrix",
    "ridge_classifier",
    "target_matrix",
]
