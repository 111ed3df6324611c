"""Re-expressing Silero VAD's convolutions: parity with the wheel's graph, and failure when wrong."""

from __future__ import annotations

import pytest
import torch

from contracts.card import card_json
from export.importers import silero_vad
from export.parity import ParityError

pytest.importorskip("silero_vad")


def test_export_matches_the_wheels_graph(tmp_path):
    card = card_json(silero_vad.stage(tmp_path, 1))
    checks = {c["check"]: c for c in card["parity"]["checks"]}
    assert checks["probabilities"]["max_abs_diff"] <= 1e-4 and checks["state"]["min_cosine"] >= 0.99999
    assert [t["name"] for t in card["inputs"]] == ["input", "h", "c"]
    assert [t["name"] for t in card["outputs"]] == ["speech_probs", "hn", "cn"]


def test_a_wrong_re_expression_fails_parity(tmp_path, monkeypatch):
    original = silero_vad.load_module

    def off_by_one_tap():
        module = original()
        with torch.no_grad():
            module.w1.copy_(torch.roll(module.w1, 128, dims=0))  # taps of encoder.1 in the wrong order
        return module

    monkeypatch.setattr(silero_vad, "load_module", off_by_one_tap)
    with pytest.raises(ParityError, match="probabilities"):
        silero_vad.stage(tmp_path, 1)
