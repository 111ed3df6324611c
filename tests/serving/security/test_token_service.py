"""TokenService on a real gateway: admin-only, and every change applies at the next RPC (no restart)."""

from __future__ import annotations

import grpc
import pytest

from protos.v1 import speaker_pb2, speaker_pb2_grpc, tokens_pb2, tokens_pb2_grpc
from serving.server import Gateway
from tests.serving.security.conftest import _config, auth


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def _lister(channel: grpc.Channel):
    stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
    return lambda token: stub.List(speaker_pb2.ListSpeakersRequest(), metadata=auth(token), timeout=10)


def test_create_list_revoke_apply_at_the_next_rpc_and_need_admin(secured, channel, tokens):
    admin = tokens_pb2_grpc.TokenServiceStub(channel)
    as_admin = auth(tokens["admin"])
    list_speakers = _lister(channel)
    request = tokens_pb2.CreateTokenRequest(subject="ci", role="enroll", expires_days=30)
    for role in ("verify", "enroll"):
        assert _code(lambda: admin.Create(request, metadata=auth(tokens[role]), timeout=10)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert _code(lambda: admin.List(tokens_pb2.ListTokensRequest(), metadata=auth(tokens[role]), timeout=10)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )  # List here is admin, unlike the galleries' List
    assert _code(lambda: admin.Create(request, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED

    created = admin.Create(request, metadata=as_admin, timeout=30)
    token, info = created.token, created.info
    assert token.startswith(f"tt_{info.id}_") and info.role == "enroll" and info.state == "active"
    assert 29.9 * 86400 < info.expires_at - info.created_at < 30.1 * 86400
    list_speakers(token)  # accepted at once: no restart, no reload call

    listed = admin.List(tokens_pb2.ListTokensRequest(), metadata=as_admin, timeout=10).tokens
    assert [t.subject for t in listed] == ["verify-user", "enroll-user", "admin-user", "ci"]
    assert token.split("_", 2)[2] not in str(listed)  # never a secret in a listing

    revoked = admin.Revoke(tokens_pb2.RevokeTokenRequest(id=info.id), metadata=as_admin, timeout=10)
    assert revoked.state == "revoked" and revoked.revoked_at >= info.created_at
    assert _code(lambda: list_speakers(token)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        admin.Revoke(tokens_pb2.RevokeTokenRequest(id=info.id), metadata=as_admin, timeout=10).revoked_at
        == revoked.revoked_at
    )  # a second revoke changes nothing


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (tokens_pb2.CreateTokenRequest(subject="x", role="root"), grpc.StatusCode.INVALID_ARGUMENT),
        (tokens_pb2.CreateTokenRequest(subject=" ", role="verify"), grpc.StatusCode.INVALID_ARGUMENT),
        (tokens_pb2.CreateTokenRequest(subject="x" * 500, role="verify"), grpc.StatusCode.INVALID_ARGUMENT),
        (tokens_pb2.CreateTokenRequest(subject="x", role="verify", expires_days=-1), grpc.StatusCode.INVALID_ARGUMENT),
        (
            tokens_pb2.CreateTokenRequest(subject="x", role="verify", rate_per_second=-2),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (tokens_pb2.RevokeTokenRequest(id="0123456789abcdef"), grpc.StatusCode.NOT_FOUND),
        (tokens_pb2.RotateTokenRequest(id="nope"), grpc.StatusCode.NOT_FOUND),
    ],
)
def test_bad_requests_get_clean_statuses(secured, channel, tokens, request_, code):
    admin = tokens_pb2_grpc.TokenServiceStub(channel)
    call = {"CreateTokenRequest": admin.Create, "RevokeTokenRequest": admin.Revoke, "RotateTokenRequest": admin.Rotate}
    rpc = call[type(request_).__name__]
    assert _code(lambda: rpc(request_, metadata=auth(tokens["admin"]), timeout=10)) == code


def test_rotate_keeps_subject_role_and_limit_and_the_old_token_ends_after_its_grace(secured, channel, tokens):
    admin = tokens_pb2_grpc.TokenServiceStub(channel)
    as_admin = auth(tokens["admin"])
    list_speakers = _lister(channel)
    first = admin.Create(
        tokens_pb2.CreateTokenRequest(subject="svc", role="enroll", rate_per_second=50, burst=60),
        metadata=as_admin,
        timeout=30,
    )
    # With a grace period both work, the old one now expiring.
    second = admin.Rotate(tokens_pb2.RotateTokenRequest(id=first.info.id, grace_seconds=3600), metadata=as_admin)
    assert (second.info.subject, second.info.role, second.info.rate_per_second, second.info.burst) == (
        "svc",
        "enroll",
        50,
        60,
    )
    list_speakers(first.token), list_speakers(second.token)
    old = {t.id: t for t in admin.List(tokens_pb2.ListTokensRequest(), metadata=as_admin).tokens}[first.info.id]
    assert old.rotated_to == second.info.id and old.state == "active" and 3590 < old.expires_at - old.created_at < 3610
    # Without one the old token is revoked at once; rotating a revoked token is refused.
    third = admin.Rotate(tokens_pb2.RotateTokenRequest(id=second.info.id), metadata=as_admin)
    assert _code(lambda: list_speakers(second.token)) == grpc.StatusCode.UNAUTHENTICATED
    list_speakers(third.token)
    assert _code(lambda: admin.Rotate(tokens_pb2.RotateTokenRequest(id=second.info.id), metadata=as_admin)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


def test_the_first_token_created_over_an_open_gateway_turns_authentication_on(models_dir, tmp_path):
    gw = Gateway(_config(models_dir, tmp_path / "var"))
    gw.start(background_load=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            admin, list_speakers = tokens_pb2_grpc.TokenServiceStub(ch), _lister(ch)
            assert not admin.List(tokens_pb2.ListTokensRequest(), timeout=10).tokens  # open: no token needed
            created = admin.Create(tokens_pb2.CreateTokenRequest(subject="root", role="admin"), timeout=30)
            assert _code(lambda: admin.List(tokens_pb2.ListTokensRequest(), timeout=10)) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
            assert [t.id for t in admin.List(tokens_pb2.ListTokensRequest(), metadata=auth(created.token)).tokens] == [
                created.info.id
            ]
            list_speakers(created.token)
    finally:
        gw.stop(grace=0)
