"""The audit trail survives a SIGKILL right after the replies, is pruned after its retention (at
start and periodically), marks an open gateway's calls, and can be turned off."""

from __future__ import annotations

import sqlite3
import time
from concurrent import futures

import grpc
import pytest

from protos.v1 import audit_pb2, audit_pb2_grpc, speaker_pb2, speaker_pb2_grpc
from serving.audit import AuditLog, Event, Query
from serving.server import Gateway
from tests.serving.security.conftest import _config
from tests.serving.security.gateway_process import GatewayProcess
from tests.serving.services.conftest import audio

DAY = 86400.0


def _seed(path, at: float, identity: str) -> None:
    """A row as an earlier gateway would have written it (another process's connection, as then)."""
    trail = AuditLog(path)
    try:
        trail.write(
            Event(at, "(open)", "", "/toitsu.v1.SpeakerService/Verify", "OK", "ipv4:127.0.0.1:1", 1.0, (identity,))
        )
    finally:
        trail.close()


def _ids(stub: audit_pb2_grpc.AuditServiceStub, **filters) -> set[str]:
    reply = stub.Query(audit_pb2.QueryAuditRequest(limit=1000, **filters), timeout=10)
    return {i for e in reply.events for i in e.identities}


def test_retention_prunes_old_events_at_start_and_then_periodically(models_dir, tmp_path):
    var, now = tmp_path / "var", time.time()
    path = var / "audit" / "audit.sqlite"
    _seed(path, now - 10 * DAY, "ten-days-ago")
    _seed(path, now - 1 * DAY, "yesterday")
    gw = GatewayProcess(models_dir, var, "audit.retention_days=5", "audit.prune_interval_seconds=0.5")
    try:
        stub = audit_pb2_grpc.AuditServiceStub(gw.channel)  # no token store: an open gateway (loopback)
        assert _ids(stub) == {"yesterday"}  # pruned at start
        _seed(path, time.time() - 5 * DAY + 3.0, "five-days-ago-in-3-s")
        assert _ids(stub) == {"yesterday", "five-days-ago-in-3-s"}
        deadline = time.monotonic() + 15
        while "five-days-ago-in-3-s" in _ids(stub) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert _ids(stub) == {"yesterday"}  # aged past the retention while running: pruned by the periodic pass
        (query,) = stub.Query(audit_pb2.QueryAuditRequest(method="AuditService/Query", limit=1), timeout=10).events
        assert query.subject == "(open)" and query.token_id == ""  # no authentication on this gateway
    finally:
        gw.stop()
    with sqlite3.connect(path) as conn:  # the identities went with their events
        assert (
            conn.execute("SELECT COUNT(*) FROM event_identities WHERE event NOT IN (SELECT id FROM events)").fetchone()[
                0
            ]
            == 0
        )


def test_every_reply_a_client_got_has_its_row_after_a_sigkill(models_dir, tmp_path, voices):
    var = tmp_path / "var"
    gw = GatewayProcess(models_dir, var)
    stub = speaker_pb2_grpc.SpeakerServiceStub(gw.channel)
    clip = audio(voices.clip(0, 0))
    stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id="kept", audio=[clip]), timeout=60)

    def verify(n: int) -> str:
        request = speaker_pb2.VerifySpeakerRequest(speaker_id="kept", audio=audio(voices.clip(0, 1 + n % 3)))
        stub.Verify(request, timeout=60)
        return f"verify {n}"

    with futures.ThreadPoolExecutor(4) as pool:
        answered = list(pool.map(verify, range(24)))
    gw.kill()  # at once: no shutdown, no checkpoint, no close
    assert len(answered) == 24
    trail = AuditLog(var / "audit" / "audit.sqlite")
    try:
        rows, _ = trail.query(Query(identity="kept", limit=100))
    finally:
        trail.close()
    assert sorted(e.method.rsplit("/", 1)[-1] for e in rows) == ["Enroll"] + ["Verify"] * 24
    assert {e.code for e in rows} == {"OK"}


def test_the_trail_can_be_turned_off(models_dir, tmp_path):
    gw = Gateway(_config(models_dir, tmp_path / "var", **{"audit.enabled": "false", "speaker.enabled": "false"}))
    gw.start(background_load=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = audit_pb2_grpc.AuditServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.Query(audit_pb2.QueryAuditRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        gw.stop(grace=0)
    assert not (tmp_path / "var" / "audit").exists()
