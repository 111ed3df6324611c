"""The SERVICES registry drives the server: one added line is a served service with its own
health entry and its reflection name, and health follows the modalities a service needs."""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_tools import protoc

from serving.config import load_config
from serving.server import Gateway
from serving.services.registry import SERVICES, Service, modality_service

ECHO_PROTO = """
syntax = "proto3";
package toitsu.registrytest;
message EchoRequest { string text = 1; }
message EchoReply { string text = 1; }
service EchoService { rpc Echo(EchoRequest) returns (EchoReply); }
"""


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    """A service the gateway has never heard of, compiled here: (pb2, pb2_grpc)."""
    out = tmp_path_factory.mktemp("echo")
    (out / "registry_echo.proto").write_text(textwrap.dedent(ECHO_PROTO))
    assert (
        protoc.main(
            ["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}", str(out / "registry_echo.proto")]
        )
        == 0
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(out))
        yield importlib.import_module("registry_echo_pb2"), importlib.import_module("registry_echo_pb2_grpc")


def _echo_service(pb2, pb2_grpc) -> Service:
    class Echo(pb2_grpc.EchoServiceServicer):
        def Echo(self, request, context):
            return pb2.EchoReply(text=request.text[::-1])

    return Service(
        pb2.DESCRIPTOR.services_by_name["EchoService"].full_name,
        pb2_grpc.add_EchoServiceServicer_to_server,
        lambda runtime: Echo(),
        needs=(),
    )


@pytest.fixture
def gateway(tmp_path) -> Iterator[Gateway]:
    """No modality enabled: nothing to load, so no model pack is needed."""
    config = load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": "0",
            "speaker.enabled": "false",
            "sound.enabled": "false",
            "face.enabled": "false",
            "paths.models": str(tmp_path / "none"),
            "paths.var": str(tmp_path / "var"),
        }
    )
    gw = Gateway(config)
    yield gw
    gw.stop(grace=0)


def _health(channel: grpc.Channel, service: str) -> str:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _listed(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    return {s.name for reply in replies for s in reply.list_services_response.service}


def test_one_registry_line_serves_a_new_service_with_health_and_reflection(gateway, echo, monkeypatch):
    pb2, pb2_grpc = echo
    monkeypatch.setitem(SERVICES, "echo", _echo_service(pb2, pb2_grpc))
    port = gateway.start(background_load=False)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert pb2_grpc.EchoServiceStub(channel).Echo(pb2.EchoRequest(text="abc"), timeout=5).text == "cba"
        assert _health(channel, "toitsu.registrytest.EchoService") == "SERVING"  # it needs no model
        assert "toitsu.registrytest.EchoService" in _listed(channel)


def test_health_follows_the_modalities_a_service_needs(gateway, echo, monkeypatch):
    pb2, pb2_grpc = echo
    # The same service, now over the (disabled) speaker modality: NOT_SERVING, and its servicer is
    # handed a runtime that says why.
    seen = []

    class Echo(pb2_grpc.EchoServiceServicer):
        def __init__(self, runtime, deadline, store_media):
            self.runtime = runtime

        def Echo(self, request, context):
            seen.append(self.runtime)
            self.runtime()
            return pb2.EchoReply()

    monkeypatch.setitem(SERVICES, "echo", modality_service(pb2, pb2_grpc, "EchoService", Echo, "speaker"))
    port = gateway.start(background_load=False)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert _health(channel, "toitsu.registrytest.EchoService") == "NOT_SERVING"
        with pytest.raises(grpc.RpcError) as err:
            pb2_grpc.EchoServiceStub(channel).Echo(pb2.EchoRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "speaker.enabled = false" in err.value.details()
    assert len(seen) == 1


def test_every_registered_service_is_listed_and_has_a_health_entry(gateway):
    port = gateway.start(background_load=False)
    names = {"toitsu.v1.SpeakerService", "toitsu.v1.SoundService", "toitsu.v1.FaceService"}
    admin = {
        "toitsu.v1.ModelService",
        "toitsu.v1.GalleryAdminService",
        "toitsu.v1.TokenService",
        "toitsu.v1.AuditService",
    }  # need no model
    assert {s.full_name for s in SERVICES.values()} == names | admin
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        listed = names | admin | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
        assert _listed(channel) == listed
        for name in names:  # every modality is disabled here
            assert _health(channel, name) == "NOT_SERVING"
        for name in admin:
            assert _health(channel, name) == "SERVING"
        with pytest.raises(grpc.RpcError) as err:  # a name nobody registered has no entry at all
            _health(channel, "toitsu.v1.NoSuchService")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_service_name_its_module_does_not_define_is_refused(echo):
    pb2, pb2_grpc = echo
    with pytest.raises(KeyError, match="NoSuchService"):
        modality_service(pb2, pb2_grpc, "NoSuchService", object, "speaker")
