"""The whole role × RPC matrix over gRPC, and fuzzed authorization metadata: clean statuses only."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.security.roles import ROLES, allows, required_role
from serving.services.registry import SERVICES
from tests.serving.security.conftest import auth

REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def _methods() -> list[tuple[str, bool, bool]]:
    pool = descriptor_pool.Default()
    return [
        (f"/{s.full_name}/{m.name}", m.client_streaming, m.server_streaming)
        for service in SERVICES.values()
        for s in [pool.FindServiceByName(service.full_name)]
        for m in s.methods
    ]


def _call(
    channel: grpc.Channel, method: str, client_streaming: bool, server_streaming: bool, metadata
) -> grpc.StatusCode:
    """Send an empty request as raw bytes (no stub, no decoding here) and return the status code."""
    kinds = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    call = kinds[(client_streaming, server_streaming)](method)
    request = iter([b""]) if client_streaming else b""
    try:
        result = call(request, metadata=metadata, timeout=10)
        if server_streaming:
            for _ in result:
                pass
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_every_role_on_every_rpc(secured, channel, tokens):
    seen = 0
    for method, cs, ss in _methods():
        assert _call(channel, method, cs, ss, None) == grpc.StatusCode.UNAUTHENTICATED, method
        for role in ROLES:
            code = _call(channel, method, cs, ss, auth(tokens[role]))
            if allows(role, required_role(method)):
                assert code not in REFUSED, f"{role} on {method}: {code}"
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, f"{role} on {method}: {code}"
            seen += 1
    assert seen == 3 * len(_methods()) >= 3 * 29


@pytest.mark.parametrize(
    "metadata",
    [
        [("authorization", "")],
        [("authorization", "Bearer")],
        [("authorization", "Bearer ")],
        [("authorization", "Basic dXNlcjpwYXNz")],
        [("authorization", "Bearer " + "A" * 6000)],
        [("authorization", "Bearer tt_0123456789abcdef_" + "!~" * 22)],
        [("authorization", "Bearer tt__")],
        [("authorization", "Bearer tt_0123456789ABCDEF_" + "A" * 43)],
        [("authorization", "Bearer x"), ("authorization", "Bearer y")],
        [("authorization-bin", b"\x00\xff" * 100)],
        [("x-token", "tt_0123456789abcdef_" + "A" * 43)],
    ],
)
def test_fuzzed_authorization_metadata_gets_a_clean_status(secured, channel, metadata):
    code = _call(channel, "/toitsu.v1.SpeakerService/List", False, False, metadata)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING  # and the server is still fine


def test_metadata_beyond_grpcs_limit_is_refused_cleanly(secured, channel, tokens):
    code = _call(channel, "/toitsu.v1.SpeakerService/List", False, False, auth("A" * (64 << 10)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED  # gRPC's own header limit, before the interceptor
    assert _call(channel, "/toitsu.v1.SpeakerService/List", False, False, auth(tokens["enroll"])) == grpc.StatusCode.OK
