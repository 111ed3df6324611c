"""Losses: small modules returning a typed ``LossOutput`` (DESIGN §4), and the ``LOSSES`` registry.

``LOSSES`` maps a recipe's loss name to its class. It also lists the losses defined by the seed
methods in ``training.methods``, which themselves import ``training.losses.result``; to keep
that from being an import cycle the registry is built on first access (PEP 562 ``__getattr__``),
not at import time. It is a plain dict: ``from training.losses import LOSSES``.
"""

from __future__ import annotations

from typing import Any

from training.losses.aam_softmax import AAMSoftmax
from training.losses.result import LossOutput
from training.losses.similarity import ScaledCosine, cosine_matrix

__all__ = ["AAMSoftmax", "LOSSES", "LossOutput", "ScaledCosine", "cosine_matrix"]

_registry: dict[str, type] | None = None


def _build_registry() -> dict[str, type]:
    from training.methods.generalized_contrastive import AngularPrototypicalLoss, GeneralizedContrastiveLoss
    from training.methods.meta_training_sets import MetaTrainingSetLoss

    return {
        "aam_softmax": AAMSoftmax,
        "angular_prototypical": AngularPrototypicalLoss,
        "generalized_contrastive": GeneralizedContrastiveLoss,
        "meta_training_sets": MetaTrainingSetLoss,
    }


def __getattr__(name: str) -> Any:
    global _registry
    if name == "LOSSES":
        if _registry is None:
            _registry = _build_registry()
        return _registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
