"""Exporting a trained encoder: parity against torch passes, and a wrong graph is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.parity import ParityError
from export.trained_speaker import NormalizedEncoder, export_encoder, measure_parity
from training.models import build_speaker_encoder

SMALL = {
    "ecapa_tdnn": dict(
        channels=16,
        mfa_channels=48,
        attention_channels=8,
        se_channels=8,
        embedding_dim=32,
        n_mels=24,
        frontend={"n_mels": 24},
    ),
    "resnet34": dict(base_channels=4, embedding_dim=32, n_mels=24, frontend={"n_mels": 24}),
}


def _speech() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    t = np.arange(40000) / 16000
    voiced = (np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32) * 0.2
    return [voiced, (rng.standard_normal(17777) * 0.05).astype(np.float32)]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_export_of_each_encoder_is_within_tolerance(name, tmp_path):
    torch.manual_seed(0)
    encoder = build_speaker_encoder(name, **SMALL[name]).eval()
    path = export_encoder(encoder, tmp_path / "model.onnx", 16000)
    checks = {p.check: p for p in measure_parity(NormalizedEncoder(encoder).eval(), path, _speech())}
    assert checks["graph"].max_abs_diff <= 1e-4 and checks["padding"].max_abs_diff <= 1e-5


def test_a_graph_that_differs_from_the_module_is_refused(tmp_path):
    torch.manual_seed(0)
    encoder = build_speaker_encoder("ecapa_tdnn", **SMALL["ecapa_tdnn"]).eval()
    path = export_encoder(encoder, tmp_path / "model.onnx", 16000)
    with torch.no_grad():
        next(encoder.parameters()).add_(0.05)  # the module moved on after export
    with pytest.raises(ParityError, match="graph: max abs diff"):
        measure_parity(NormalizedEncoder(encoder).eval(), path, _speech())
