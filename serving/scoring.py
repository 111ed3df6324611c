"""Scores and calibrated decisions (DESIGN §3 "Scoring").

Embeddings are L2-normalised, so a raw score is the cosine similarity. With ``scoring =
"as-norm"`` (``[speaker]``) the cosine is AS-normalised against the version's cohort
(``contracts/score_norm.py``) and compared with the card's ``calibration_as_norm`` thresholds;
with ``"cosine"`` the raw cosine is compared with ``calibration``. A decision compares the score
with the threshold for the requested false-accept rate; a FAR the card did not calibrate is
refused (see ``Calibration.threshold_for``), never interpolated.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.card import AnyCard, CardError
from contracts.card_sections import Calibration, UncalibratedFar
from contracts.score_norm import as_norm
from serving.errors import InvalidInput, Unavailable

log = logging.getLogger("toitsu.scoring")

DEFAULT_TARGET_FAR = 0.01
SCORINGS = ("auto", "cosine", "as-norm")


@dataclass(frozen=True)
class Scorer:
    """How a modality scores: ``kind`` "cosine", or "as-norm" with its ``cohort`` [C, D] and ``top_n``."""

    kind: str = "cosine"
    cohort: np.ndarray | None = None
    top_n: int = 0

    def calibration(self, card: AnyCard) -> Calibration | None:
        return getattr(card, "calibration_as_norm", None) if self.kind == "as-norm" else card.calibration_section

    def rescore(self, raw: np.ndarray, templates: np.ndarray, probe: np.ndarray) -> np.ndarray:
        """Scores [K] of ``probe`` [D] against ``templates`` [K, D] whose cosines are ``raw`` [K]."""
        if self.cohort is None:
            return np.asarray(raw, dtype=np.float32)
        return as_norm(raw, templates, probe, self.cohort, self.top_n)


def load_scorer(kind: str, card: AnyCard, version_dir: Path) -> Scorer:
    """The scorer ``kind`` for a served version; as-norm without a cohort and its calibration in the
    card, or with a cohort file that differs from the card, is a ``CardError`` (never a fallback)."""
    if kind == "auto":  # AS-norm where the version ships a cohort, else cosine (replies say which)
        if getattr(card, "cohort", None) is None or getattr(card, "calibration_as_norm", None) is None:
            log.info("%s v%d has no AS-norm cohort in its card: scoring by cosine", card.name, card.version)
            return Scorer()
        kind = "as-norm"
    if kind == "cosine":
        return Scorer()
    if kind != "as-norm":
        raise CardError(f"scoring must be one of {', '.join(SCORINGS)}, got {kind!r}")
    cohort = getattr(card, "cohort", None)
    where = f"{card.name} v{card.version}"
    if cohort is None or getattr(card, "calibration_as_norm", None) is None:
        raise CardError(
            f'scoring = "as-norm" but {where} has no AS-norm cohort and calibration in its card; '
            'set scoring = "cosine" or re-export the model'
        )
    path = version_dir / cohort.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CardError(f"{where}: AS-norm cohort {path}: {exc}") from None
    if hashlib.sha256(data).hexdigest() != cohort.sha256:
        raise CardError(f"{where}: {path} does not match the sha256 in its card")
    vectors = np.load(path, allow_pickle=False).astype(np.float32)
    if vectors.shape != (cohort.embeddings, card.embedding_dim):
        raise CardError(f"{where}: {path} is {list(vectors.shape)}, the card says [{cohort.embeddings}, {cohort.dim}]")
    return Scorer("as-norm", vectors, cohort.top_n)


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


def threshold(card: AnyCard, target_far: float, scorer: Scorer | None = None) -> tuple[float, float]:
    """(threshold, far) for a request's ``target_far`` (0 → the default 1 %), from the calibration
    that matches ``scorer`` (default: cosine)."""
    far = DEFAULT_TARGET_FAR if target_far == 0 else float(target_far)
    if not 0 < far < 1:
        raise InvalidInput(f"target_far must be in (0, 1), got {target_far:g}")
    calibration = (scorer or Scorer()).calibration(card)
    if calibration is None:
        raise Unavailable(f"model {card.name} v{card.version} has no calibration in its card; re-export it")
    try:
        return calibration.threshold_for(far), far
    except UncalibratedFar as exc:
        raise InvalidInput(str(exc)) from None


def decide(score: float, card: AnyCard, target_far: float, scorer: Scorer | None = None) -> Decision:
    value, far = threshold(card, target_far, scorer)
    return Decision(float(score), bool(score >= value), value, far)
