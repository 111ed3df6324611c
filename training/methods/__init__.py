"""The seed methods of METHODS.md, one file each, behind the ``METHODS`` registry (DESIGN §4).

``METHODS`` is a plain dict: file name → ``Method`` (its METHODS.md section, the recipe kinds that
train with it, and ``build``, the constructor a recipe's section is passed to as keyword
arguments). Importing it builds nothing.

- §1 ``generalized_contrastive`` — GCL (and the AP loss it reduces to), speaker and face recipes;
- §2 ``meta_training_sets`` — episodic ridge-regression loss, speaker recipes;
- §4 ``closed_form_pretraining`` — the formula class sets a sound classifier is pre-trained on
  (``build`` makes a class set, not a loss: the pre-training objective is plain cross-entropy);
- §5 ``graph_grouping`` — graph grouping loss, face recipes;
- §8 ``teacher_sampling`` — teacher-assisted mini-batch sampling, ``audio-visual`` recipes
  (``build`` is the offline neighbour table, called with the recipe's ``k``, ``tau_pos`` and
  ``cross_video``; the per-batch screening and the batches are ``training.data.teacher_batches``).

§6 (VAE with categorical labels, a ``generative`` kind) and §7 (disentangling latent groups)
are whole generative models with their own packages (``training/generative/``,
``training/disentangle/``). §3 (quasi-Newton adversarial attacks) is a red-team tool, not a
training method: it lives in ``training/redteam/`` (DESIGN §4 calls it ``training/attacks/``;
the package is named for what it is used for) and is not registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.methods.closed_form_pretraining import build_class_set
from training.methods.generalized_contrastive import (
    AngularPrototypicalLoss,
    GeneralizedContrastiveLoss,
    keys_for_batch,
    normalized_target_matrix,
    target_matrix,
)
from training.methods.graph_grouping import GraphGroupingLoss
from training.methods.meta_training_sets import MetaTrainingSetLoss, ridge_classifier
from training.methods.teacher_sampling import neighbour_table


@dataclass(frozen=True)
class Method:
    """A seed method: ``section`` of METHODS.md, ``kinds`` of recipe that use it, and ``build``,
    called with a recipe section's keys as keyword arguments (so a wrong key is a TypeError)."""

    section: int
    title: str
    kinds: tuple[str, ...]
    build: Callable[..., Any]


METHODS: dict[str, Method] = {
    "generalized_contrastive": Method(
        1, "Generalized contrastive loss", ("speaker", "face"), GeneralizedContrastiveLoss
    ),
    "meta_training_sets": Method(
        2, "Optimizing speaker embeddings using meta-training sets", ("speaker",), MetaTrainingSetLoss
    ),
    "closed_form_pretraining": Method(
        4, "Closed-form pre-training for small-sample environmental sound recognition", ("sound",), build_class_set
    ),
    "graph_grouping": Method(5, "Graph grouping loss", ("face",), GraphGroupingLoss),
    "teacher_sampling": Method(
        8, "Teacher-assisted mini-batch sampling for blind distillation", ("audio-visual",), neighbour_table
    ),
}

__all__ = [
    "METHODS",
    "AngularPrototypicalLoss",
    "GeneralizedContrastiveLoss",
    "GraphGroupingLoss",
    "MetaTrainingSetLoss",
    "Method",
    "build_class_set",
    "keys_for_batch",
    "normalized_target_matrix",
    "neighbour_table",
    "ridge_classifier",
    "target_matrix",
]
