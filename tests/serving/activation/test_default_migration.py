"""Upgrading to the CAM++ default: a gallery enrolled with GE2E (256-d) is refused clearly by a
gateway serving CAM++ (192-d) — FAILED_PRECONDITION naming both models, never UNAVAILABLE — and
migrates with one activation, after which the same speakers verify on CAM++."""

from __future__ import annotations

import grpc
import pytest

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from tests.serving.activation.conftest import start_gateway
from tests.serving.activation.test_speaker_activation import SPEAKERS, _enroll, _verify

CAMPPLUS = "campplus-zh-en"


def _stub(gateway):
    return speaker_pb2_grpc.SpeakerServiceStub(grpc.insecure_channel(f"127.0.0.1:{gateway.port}"))


def test_a_ge2e_gallery_is_refused_by_campplus_then_migrates(model_repo, tmp_path, voices):
    var = tmp_path / "var"
    old = start_gateway(model_repo, var, "speaker")  # GE2E, as galleries were enrolled before
    try:
        stub = _stub(old)
        for name, i in SPEAKERS.items():
            _enroll(stub, voices, name, i)
    finally:
        old.stop(grace=0)

    new = start_gateway(model_repo, var, "speaker", **{"speaker.model": CAMPPLUS})
    try:
        stub = _stub(new)
        with pytest.raises(grpc.RpcError) as refused:
            _verify(stub, voices, "spk1", 1)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "resemblyzer-ge2e" in refused.value.details() and CAMPPLUS in refused.value.details()
        embedded = stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=common_pb2.Audio(encoded=voices.clip(1, 3))))
        assert len(embedded.embedding.values) == 192  # the server is up and serving CAM++

        report = new.activator.activate("speaker", CAMPPLUS, 1)
        assert (report.from_dim, report.to_dim, report.reembedded) == (256, 192, len(SPEAKERS))
        genuine = {name: _verify(stub, voices, name, i) for name, i in SPEAKERS.items()}
        assert all(r.model.name == CAMPPLUS for r in genuine.values())
        impostor = _verify(stub, voices, "spk0", SPEAKERS["spk2"])
        assert min(r.decision.score for r in genuine.values()) > impostor.decision.score
    finally:
        new.stop(grace=0)
