"""Importing Resemblyzer: the parity checks pass on the real weights and fail on wrong ones."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch

from contracts.card import card_json
from export.importers import resemblyzer_ge2e
from export.importers.real_speech import load_real_speech
from export.parity import ParityError

pytest.importorskip("resemblyzer")


@pytest.fixture(scope="module")
def speech(voices) -> list[np.ndarray]:
    real = [x for x, _ in load_real_speech().values()]
    return real + [sf.read(io.BytesIO(voices.clip(i, 1)), dtype="float32")[0] for i in range(2)]


def test_export_passes_parity_and_card_records_it(tmp_path, speech):
    encoder = resemblyzer_ge2e.load_pretrained()
    path = resemblyzer_ge2e.export_graph(encoder, tmp_path / "model.onnx")
    checks = {p.check: p for p in resemblyzer_ge2e.measure_parity(encoder, path, speech)}
    assert checks["model"].max_abs_diff <= 1e-4 and checks["graph"].max_abs_diff <= 1e-4
    assert checks["utterance"].min_cosine >= 0.999 and checks["padding"].max_abs_diff <= 1e-5
    card = card_json(resemblyzer_ge2e.build_card(3, list(checks.values()), ["real", "generated"]))
    assert card["version"] == 3 and card["provenance"]["license"] == "Apache-2.0"
    assert [c["check"] for c in card["parity"]["checks"]] == ["mel", "model", "graph", "utterance", "padding"]


def test_parity_fails_on_a_wrong_export(tmp_path, speech):
    encoder = resemblyzer_ge2e.load_pretrained()
    with torch.no_grad():
        encoder.linear.bias.add_(0.05)  # what a bad conversion would look like
    path = resemblyzer_ge2e.export_graph(encoder, tmp_path / "model.onnx")
    with pytest.raises(ParityError, match="model: max abs diff"):
        resemblyzer_ge2e.measure_parity(encoder, path, speech)
