"""Calibrated decisions: thresholds come from the card, never guessed."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.card import SpeakerCard
from contracts.card_sections import Calibration, TrainingProvenance, tensor
from serving.errors import InvalidInput, Unavailable
from serving.scoring import decide, normalize


def _card(calibration: Calibration | None) -> SpeakerCard:
    return SpeakerCard(
        name="m",
        version=1,
        inputs=[tensor("waveform", "float32", [-1, -1], "waveform")],
        outputs=[tensor("embedding", "float32", [-1, 4], "embedding")],
        audio={"sample_rate": 16000},
        embedding={"output": "embedding", "dim": 4, "normalized": True},
        provenance=TrainingProvenance(run="r", step=1, recipe=""),
        calibration=calibration,
    )


def _cal(thresholds: dict[float, float]) -> Calibration:
    return Calibration(
        dev_trials="dev",
        n_target=1,
        n_nontarget=1,
        eer=0.1,
        eer_threshold=0.5,
        thresholds=[{"far": f, "threshold": t, "frr": 0.5} for f, t in thresholds.items()],
    )


def test_decision_uses_the_threshold_for_the_requested_far():
    card = _card(_cal({0.01: 0.7, 0.001: 0.8}))
    assert decide(0.75, card, 0).accepted and decide(0.75, card, 0).target_far == 0.01  # default 1 %
    strict = decide(0.75, card, 0.001)
    assert not strict.accepted and strict.threshold == 0.8
    assert decide(0.8, card, 0.001).accepted  # accept when score >= threshold


def test_uncalibrated_far_or_model_is_refused():
    with pytest.raises(InvalidInput, match="not calibrated"):
        decide(0.5, _card(_cal({0.01: 0.7})), 0.05)
    with pytest.raises(InvalidInput, match="in \\(0, 1\\)"):
        decide(0.5, _card(_cal({0.01: 0.7})), 1.5)
    with pytest.raises(Unavailable, match="no calibration"):
        decide(0.5, _card(None), 0.01)


def test_normalize_rejects_zero_and_non_finite():
    assert np.allclose(np.linalg.norm(normalize(np.array([3.0, 4.0]))), 1)
    for bad in (np.zeros(3), np.array([np.nan, 1.0])):
        with pytest.raises(InvalidInput):
            normalize(bad)
