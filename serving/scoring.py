"""Scores and calibrated decisions (DESIGN §3 "Scoring").

Embeddings are L2-normalised, so a score is the cosine similarity. A decision compares it with
the model card's threshold for the requested false-accept rate; a FAR the card did not
calibrate is refused (see ``Calibration.threshold_for``), never interpolated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts.card import AnyCard
from contracts.card_sections import UncalibratedFar
from serving.errors import InvalidInput, Unavailable

DEFAULT_TARGET_FAR = 0.01


@dataclass(frozen=True)
class Decision:
    score: float
    accepted: bool
    threshold: float
    target_far: float


def normalize(vector: np.ndarray) -> np.ndarray:
    """L2-normalise a [D] or [N, D] float32 array; zero vectors are an input error."""
    norms = np.linalg.norm(vector, axis=-1, keepdims=True)
    if not np.all(np.isfinite(vector)) or np.any(norms == 0):
        raise InvalidInput("embedding must be finite and non-zero")
    return (vector / norms).astype(np.float32)


def threshold(card: AnyCard, target_far: float) -> tuple[float, float]:
    """(threshold, far) for a request's ``target_far`` (0 → the default 1 %)."""
    far = DEFAULT_TARGET_FAR if target_far == 0 else float(target_far)
    if not 0 < far < 1:
        raise InvalidInput(f"target_far must be in (0, 1), got {target_far:g}")
    calibration = card.calibration_section
    if calibration is None:
        raise Unavailable(f"model {card.name} v{card.version} has no calibration in its card; re-export it")
    try:
        return calibration.threshold_for(far), far
    except UncalibratedFar as exc:
        raise InvalidInput(str(exc)) from None


def decide(score: float, card: AnyCard, target_far: float) -> Decision:
    value, far = threshold(card, target_far)
    return Decision(float(score), bool(score >= value), value, far)
