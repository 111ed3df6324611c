"""An in-process gateway on port 0 with the default model pack and a fresh gallery."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.v1 import common_pb2, speaker_pb2_grpc
from serving.config import load_config
from serving.server import Gateway

MAX_MESSAGE_MB = 2


@pytest.fixture
def gateway(models_dir, tmp_path):
    config = load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": "0",
            "sound.enabled": "false",
            "face.enabled": "false",
            "paths.models": str(models_dir),
            "paths.var": str(tmp_path / "var"),
            "server.max_message_mb": str(MAX_MESSAGE_MB),
        }
    )
    gw = Gateway(config)
    gw.start(background_load=False)
    assert gw.wait_loaded(60)
    yield gw
    gw.stop(grace=1)


@pytest.fixture
def channel(gateway):
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}", options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return speaker_pb2_grpc.SpeakerServiceStub(channel)


@pytest.fixture
def health(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    return lambda service="": health_pb2.HealthCheckResponse.ServingStatus.Name(
        stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
    )


def audio(data: bytes) -> common_pb2.Audio:
    return common_pb2.Audio(encoded=data)
