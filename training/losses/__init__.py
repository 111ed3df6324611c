"""Losses: small modules returning a typed ``LossOutput`` (DESIGN §4), and the ``LOSSES`` registry.

``LOSSES`` (a plain dict) maps a recipe's loss name to the class of a loss that is not itself a
seed method, such as the AAM-softmax baseline. The seed methods' losses (GCL, meta-training sets,
graph grouping) live in ``training.methods`` and are reached through ``METHODS``; they import
``training.losses.result`` and ``training.losses.similarity``, so this package never imports them.
"""

from __future__ import annotations

from torch import nn

from training.losses.aam_softmax import AAMSoftmax
from training.losses.result import LossOutput
from training.losses.similarity import ScaledCosine, cosine_matrix

__all__ = ["AAMSoftmax", "LOSSES", "LossOutput", "ScaledCosine", "cosine_matrix"]

LOSSES: dict[str, type[nn.Module]] = {"aam_softmax": AAMSoftmax}
