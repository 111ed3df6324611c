"""Health before and after loading, load failures, the metrics endpoint, graceful shutdown."""

from __future__ import annotations

import socket
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.v1 import speaker_pb2, speaker_pb2_grpc
from serving.config import load_config
from serving.server import Gateway
from tests.conftest import SPEAKER_MODEL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_a_model_that_cannot_load_keeps_the_server_up_but_not_serving(tmp_path):
    config = load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": "0",
            "sound.enabled": "false",
            "face.enabled": "false",
            "paths.models": str(tmp_path / "empty"),
            "paths.var": str(tmp_path / "var"),
        }
    )
    gateway = Gateway(config)
    port = gateway.start()
    assert not gateway.wait_loaded(30)
    assert _status(port) == "NOT_SERVING"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as err:
            speaker_pb2_grpc.SpeakerServiceStub(ch).List(speaker_pb2.ListSpeakersRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "make models" in err.value.details()
    gateway.stop(grace=0)


def test_metrics_endpoint_and_graceful_stop(models_dir, tmp_path):
    metrics_port = _free_port()
    config = load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": str(metrics_port),
            "sound.enabled": "false",
            "face.enabled": "false",
            "paths.models": str(models_dir),
            "paths.var": str(tmp_path / "var"),
        }
    )
    gateway = Gateway(config)
    port = gateway.start()
    assert gateway.wait_loaded(60) and _status(port) == "SERVING"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        speaker_pb2_grpc.SpeakerServiceStub(ch).List(speaker_pb2.ListSpeakersRequest(), timeout=5)
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert 'toitsu_requests_total{code="OK",method="SpeakerService.List"} 1.0' in body
    assert 'toitsu_gallery_size{modality="speaker"} 0.0' in body
    gateway.stop(grace=1)
    with pytest.raises(grpc.RpcError):
        _status(port)
    gateway.stop()  # idempotent


def test_a_gallery_bound_to_another_version_refuses_scoring_but_stays_up(models_dir, tmp_path, voices):
    import json
    import shutil

    from protos.v1 import common_pb2

    var = tmp_path / "var"
    first = Gateway(
        load_config(
            overrides={
                "server.port": "0",
                "server.metrics_port": "0",
                "sound.enabled": "false",
                "face.enabled": "false",
                "paths.models": str(models_dir),
                "paths.var": str(var),
            }
        )
    )
    port = first.start(background_load=False)
    enroll = speaker_pb2.EnrollSpeakerRequest(speaker_id="ann", audio=[common_pb2.Audio(encoded=voices.clip(0, 0))])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        speaker_pb2_grpc.SpeakerServiceStub(ch).Enroll(enroll, timeout=30)
    first.stop(grace=1)
    repo = tmp_path / "models"  # the same pack plus a "v2" of the speaker model
    shutil.copytree(models_dir, repo)
    v2 = repo / SPEAKER_MODEL / "2"
    shutil.copytree(repo / SPEAKER_MODEL / "1", v2)
    card = json.loads((v2 / "card.json").read_text())
    (v2 / "card.json").write_text(json.dumps({**card, "version": 2}))
    second = Gateway(
        load_config(
            overrides={
                "server.port": "0",
                "server.metrics_port": "0",
                "sound.enabled": "false",
                "face.enabled": "false",
                "paths.models": str(repo),
                "paths.var": str(var),
            }
        )
    )
    port = second.start(background_load=False)
    assert second.wait_loaded(10) and _status(port) == "SERVING"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
        embedded = stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=enroll.audio[0]), timeout=30)
        assert embedded.embedding.model.version == 2
        verify = speaker_pb2.VerifySpeakerRequest(speaker_id="ann", audio=enroll.audio[0])
        for call in (
            lambda: stub.Verify(verify, timeout=30),
            lambda: stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id="bo", audio=enroll.audio), timeout=30),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "v1" in err.value.details() and "v2" in err.value.details()
        assert stub.List(speaker_pb2.ListSpeakersRequest(), timeout=5).total == 1
    second.stop(grace=1)
