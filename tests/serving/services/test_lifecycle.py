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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_a_model_that_cannot_load_keeps_the_server_up_but_not_serving(tmp_path):
    config = load_config(overrides={"server.port": "0", "server.metrics_port": "0",
                                    "paths.models": str(tmp_path / "empty"), "paths.var": str(tmp_path / "var")})
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
    config = load_config(overrides={"server.port": "0", "server.metrics_port": str(metrics_port),
                                    "paths.models": str(models_dir), "paths.var": str(tmp_path / "var")})
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
