"""The audit trail on a real ``toitsu serve`` child process with tokens: who called what, on which
identities, with what result; refusals included; admin-only queries and their filters; ids only."""

from __future__ import annotations

import argparse
import json
import sqlite3
import time

import grpc
import numpy as np
import pytest

from protos.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    face_pb2,
    face_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    speaker_pb2,
    speaker_pb2_grpc,
)
from serving.security.tokens import TokenStore
from tests.serving.security.conftest import auth
from tests.serving.security.gateway_process import GatewayProcess
from tests.serving.services.conftest import audio
from toitsu.cli import main
from training.data.face_scenes import frames


@pytest.fixture(scope="module")
def env(models_dir, tmp_path_factory):
    var = tmp_path_factory.mktemp("audit") / "var"
    store = TokenStore(var / "security" / "tokens.json")
    tokens = {role: store.create(f"{role}-user", role)[0] for role in ("verify", "enroll")}
    tokens["admin"] = store.create("auditor", "admin")[0]
    gw = GatewayProcess(models_dir, var, modalities=("speaker", "face"))
    yield {"gw": gw, "store": store, "tokens": tokens, "var": var}
    gw.stop()


def _id(token: str) -> str:
    return token.split("_")[1]  # tt_<id>_<secret>


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def query(env, token: str | None = None, **filters) -> audit_pb2.QueryAuditResponse:
    stub = audit_pb2_grpc.AuditServiceStub(env["gw"].channel)
    metadata = auth(token or env["tokens"]["admin"])
    return stub.Query(audit_pb2.QueryAuditRequest(**filters), metadata=metadata, timeout=10)


def events(env, **filters) -> list[audit_pb2.AuditEvent]:
    return list(query(env, **filters).events)


def speakers(env) -> speaker_pb2_grpc.SpeakerServiceStub:
    return speaker_pb2_grpc.SpeakerServiceStub(env["gw"].channel)


def enroll(env, voices, speaker: str, voice: int, token: str, **fields) -> None:
    request = speaker_pb2.EnrollSpeakerRequest(speaker_id=speaker, audio=[audio(voices.clip(voice, 0))], **fields)
    assert speakers(env).Enroll(request, metadata=auth(token), timeout=60).created


def test_a_verify_is_recorded_with_the_tokens_subject_and_the_identity(env, voices):
    tokens, stub = env["tokens"], speakers(env)
    enroll(env, voices, "alice", 0, tokens["enroll"])
    before = time.time()
    probe = speaker_pb2.VerifySpeakerRequest(speaker_id="alice", audio=audio(voices.clip(0, 1)))
    assert stub.Verify(probe, metadata=auth(tokens["verify"]), timeout=60).decision.accepted
    after = time.time()
    (event,) = events(env, identity="alice", method="SpeakerService/Verify")
    assert (event.subject, event.token_id, event.method, event.code) == (
        "verify-user",
        _id(tokens["verify"]),
        "/toitsu.v1.SpeakerService/Verify",
        "OK",
    )
    assert list(event.identities) == ["alice"] and before - 0.5 <= event.time <= after and event.duration_ms > 0
    assert event.peer.startswith(("ipv4:127.0.0.1:", "ipv6:[::1]:"))
    (enrolled,) = events(env, identity="alice", method="/toitsu.v1.SpeakerService/Enroll")
    assert enrolled.subject == "enroll-user" and enrolled.code == "OK"

    # A failed read is audited with the id it asked for; Identify and List with the ids they revealed.
    unknown = speaker_pb2.VerifySpeakerRequest(speaker_id="nobody", audio=audio(voices.clip(1, 1)))
    assert _code(lambda: stub.Verify(unknown, metadata=auth(tokens["verify"]), timeout=60)) == (
        grpc.StatusCode.NOT_FOUND
    )
    (missed,) = events(env, identity="nobody")
    assert missed.code == "NOT_FOUND" and missed.subject == "verify-user"
    identify = speaker_pb2.IdentifySpeakerRequest(audio=audio(voices.clip(0, 2)), top_k=3)
    assert stub.Identify(identify, metadata=auth(tokens["verify"]), timeout=60).best_id == "alice"
    listed = stub.List(speaker_pb2.ListSpeakersRequest(), metadata=auth(tokens["enroll"]), timeout=10)
    assert "alice" in {s.id for s in listed.speakers}
    methods = {e.method.rsplit("/", 1)[-1]: e for e in events(env, identity="alice")}
    assert methods.keys() == {"Enroll", "Verify", "Identify", "List"}
    assert methods["List"].subject == "enroll-user" and set(methods["List"].identities) == {
        s.id for s in listed.speakers
    }


def test_refused_calls_are_recorded_without_the_subject_they_claim(env):
    tokens, stub, since = env["tokens"], speakers(env), time.time()
    verify = speaker_pb2.VerifySpeakerRequest(speaker_id="zed")
    assert _code(lambda: stub.Verify(verify, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    forged = f"tt_{_id(tokens['verify'])}_{'A' * 43}"  # the public id of a real token, a wrong secret
    assert _code(lambda: stub.Verify(verify, metadata=auth(forged), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    delete = speaker_pb2.DeleteSpeakerRequest(speaker_id="zed")
    assert _code(lambda: stub.Delete(delete, metadata=auth(tokens["verify"]), timeout=10)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    refused = events(env, since=since, method="SpeakerService/", code="UNAUTHENTICATED")
    assert [(e.subject, e.token_id) for e in refused] == [
        ("(unauthenticated)", _id(tokens["verify"])),  # newest first: the forged one
        ("(unauthenticated)", ""),
    ]
    (denied,) = events(env, since=since, code="PERMISSION_DENIED", method="Delete")
    assert denied.subject == "verify-user" and denied.method == "/toitsu.v1.SpeakerService/Delete"
    # Refused before the request was decoded: no id could be read from it, and none was.
    assert all(not e.identities for e in [*refused, denied])


def test_only_an_admin_may_query(env):
    tokens, since = env["tokens"], time.time()
    for role in ("verify", "enroll"):
        assert _code(lambda: query(env, tokens[role])) == grpc.StatusCode.PERMISSION_DENIED
    stub = audit_pb2_grpc.AuditServiceStub(env["gw"].channel)
    assert _code(lambda: stub.Query(audit_pb2.QueryAuditRequest(), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    seen = events(env, since=since, method="AuditService/Query")  # its own row is written as it ends
    assert [(e.subject, e.code) for e in seen] == [
        ("(unauthenticated)", "UNAUTHENTICATED"),
        ("enroll-user", "PERMISSION_DENIED"),
        ("verify-user", "PERMISSION_DENIED"),
    ]
    (earlier,) = events(env, since=since, method="AuditService/Query", subject="auditor")
    assert earlier.code == "OK"  # the query just above


def test_admin_writes_are_recorded_and_job_polling_is_not(env):
    models, admin, since = model_pb2_grpc.ModelServiceStub(env["gw"].channel), env["tokens"]["admin"], time.time()
    cancel = model_pb2.CancelJobRequest(job_id="no-such-job")
    assert _code(lambda: models.CancelJob(cancel, metadata=auth(admin), timeout=10)) == grpc.StatusCode.NOT_FOUND
    models.ListJobs(model_pb2.ListJobsRequest(), metadata=auth(admin), timeout=10)
    seen = [(e.method, e.code, e.subject) for e in events(env, since=since, method="ModelService/")]
    assert seen == [("/toitsu.v1.ModelService/CancelJob", "NOT_FOUND", "auditor")]


def test_the_query_filters(env, voices):
    store, stub = env["store"], speakers(env)
    reader, writer = store.create("filter-reader", "verify")[0], store.create("filter-writer", "enroll")[0]
    enroll(env, voices, "fa-ref", 1, writer)  # the writer's calls: Enroll, List, Delete of fb-1, after `middle`
    target = speaker_pb2.VerifySpeakerRequest(speaker_id="fa-ref", audio=audio(voices.clip(1, 1)))
    start = time.time()
    for _ in range(2):
        stub.Verify(target, metadata=auth(reader), timeout=60)
    stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(1, 2))), metadata=auth(reader), timeout=60)
    middle = time.time()
    enroll(env, voices, "fb-1", 2, writer)
    stub.List(speaker_pb2.ListSpeakersRequest(), metadata=auth(writer), timeout=10)
    stub.Delete(speaker_pb2.DeleteSpeakerRequest(speaker_id="fb-1"), metadata=auth(writer), timeout=10)

    def methods(**filters) -> list[str]:
        return [e.method.rsplit("/", 1)[-1] for e in events(env, **filters)]

    assert methods(subject="filter-reader") == ["Embed", "Verify", "Verify"]  # newest first
    assert methods(subject="filter-reader", method="Verify") == ["Verify", "Verify"]
    assert methods(subject="filter-writer", since=middle) == ["Delete", "List", "Enroll"]
    assert methods(subject="filter-writer", until=middle) == ["Enroll"]  # fa-ref's
    assert methods(subject="filter-reader", since=start, until=middle) == ["Embed", "Verify", "Verify"]
    assert methods(subject="filter-reader", since=middle) == []
    assert methods(identity="fb-1") == ["Delete", "List", "Enroll"]
    assert methods(identity="fb-1", code="OK", method="SpeakerService/Delete") == ["Delete"]
    assert methods(subject="nobody-at-all") == []

    page = query(env, subject="filter-reader", limit=2)
    assert [e.method.rsplit("/", 1)[-1] for e in page.events] == ["Embed", "Verify"] and page.truncated
    assert page.events[0].id > page.events[1].id
    rest = query(env, subject="filter-reader", limit=2, before_id=page.events[-1].id)
    assert [e.method.rsplit("/", 1)[-1] for e in rest.events] == ["Verify"] and not rest.truncated

    for bad in ({"since": 20.0, "until": 10.0}, {"limit": 20000}, {"since": float("nan")}):
        assert _code(lambda: query(env, **bad)) == grpc.StatusCode.INVALID_ARGUMENT, bad


def _audit_bytes(var) -> bytes:
    files = sorted((var / "audit").glob("audit.sqlite*"))
    assert {f.name for f in files} >= {"audit.sqlite", "audit.sqlite-wal"}
    return b"".join(f.read_bytes() for f in files)


def test_no_audit_row_holds_a_template_embedding_or_media(env, voices):
    tokens, stub, var = env["tokens"], speakers(env), env["var"]
    clip = voices.clip(3, 0)
    enroll(env, voices, "dora", 3, tokens["enroll"], store_media=True)
    store = var / "galleries" / "speaker" / "store.sqlite3"
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        (template,) = conn.execute(
            "SELECT t.vector FROM templates t JOIN identities i ON i.id = t.identity_id WHERE i.external_id = 'dora'"
        ).fetchone()
    embedded = stub.Embed(
        speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(3, 1))), metadata=auth(tokens["verify"]), timeout=60
    ).embedding
    probe = speaker_pb2.VerifySpeakerRequest(speaker_id="dora", embedding=embedded)
    assert stub.Verify(probe, metadata=auth(tokens["verify"]), timeout=60).decision.accepted
    assert len(events(env, identity="dora")) == 2  # Enroll and Verify were audited...

    embedding = np.asarray(embedded.values, dtype="<f4").tobytes()
    needles = {
        "template": template,
        "template's first 16 bytes": template[:16],
        "template's last 16 bytes": template[-16:],
        "embedding (the probe)": embedding[64:96],
        "media (the enrolled clip)": clip[len(clip) // 2 : len(clip) // 2 + 48],
    }
    gallery = b"".join(p.read_bytes() for p in store.parent.glob("store.sqlite3*"))
    assert template in gallery and clip[len(clip) // 2 : len(clip) // 2 + 48] in gallery  # the scan finds them there
    trail = _audit_bytes(var)
    assert b"dora" in trail  # ...by id, and nothing else of dora's
    assert [name for name, needle in needles.items() if needle in trail] == []


def test_a_track_stream_records_each_person_and_the_one_a_track_moved_from(env):
    tokens = env["tokens"]
    faces = face_pb2_grpc.FaceServiceStub(env["gw"].channel)

    def stream(person: str) -> list[face_pb2.EnrollTracksResponse]:
        frame = [face_pb2.Frame(image=face_pb2.Image(encoded=f)) for f in shots]
        request = face_pb2.EnrollTracksRequest(track_id="cam-7", person_id=person, frames=frame, end=True)
        return list(faces.EnrollTracks(iter([request]), metadata=auth(tokens["enroll"]), timeout=120))

    shots = frames("astronaut", 3, seed=1)
    assert [r.result.accepted for r in stream("eve") if r.WhichOneof("event") == "result"] == [True]
    assert [r.result.accepted for r in stream("fay") if r.WhichOneof("event") == "result"] == [True]  # cam-7 moves
    newest, oldest = events(env, method="FaceService/EnrollTracks")
    assert list(oldest.identities) == ["eve"] and oldest.code == "OK" and oldest.subject == "enroll-user"
    assert set(newest.identities) == {"fay", "eve"} and newest.code == "OK"  # eve reported by the servicer


def test_toitsu_audit_prints_a_table_or_json(env, capsys):
    tokens, target, stub = env["tokens"], env["gw"].target, speakers(env)
    user = env["store"].create("cli-user", "enroll")[0]
    for speaker in ("cli-1", "cli-2", "cli-1"):
        delete = speaker_pb2.DeleteSpeakerRequest(speaker_id=speaker)
        assert _code(lambda: stub.Delete(delete, metadata=auth(user), timeout=10)) == grpc.StatusCode.NOT_FOUND
    argv = ["audit", "--target", target, "--since", "10m", "--subject", "cli-user", "--identity", "cli-1"]
    assert main([*argv, "--token", tokens["admin"], "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [(e["method"], e["code"], e["identities"]) for e in payload["events"]] == [
        ("/toitsu.v1.SpeakerService/Delete", "NOT_FOUND", ["cli-1"])
    ] * 2
    assert all(e["subject"] == "cli-user" and e["time"].endswith("Z") for e in payload["events"])
    assert main([*argv, "--token", tokens["admin"]]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["TIME", "(UTC)", "SUBJECT"] and len(table) == 3
    assert all("cli-user" in line and "SpeakerService/Delete" in line and "cli-1" in line for line in table[1:])
    with pytest.raises(SystemExit):
        main([*argv, "--token", tokens["enroll"], "--json"])
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "PERMISSION_DENIED"


def test_the_clis_times():
    from toitsu.commands.audit import when

    assert when("2026-12-07T15:00:00Z") == when("2026-12-07T15:00") == 1796655600.0  # naive means UTC
    assert when("2026-12-07T16:00:00+01:00") == 1796655600.0 and when("2026-12-07") == 1796601600.0
    assert when("1796655600") == 1796655600.0
    assert abs(when("2h") - (time.time() - 7200)) < 5 and abs(when("7d") - (time.time() - 7 * 86400)) < 5
    with pytest.raises(argparse.ArgumentTypeError, match="not a time"):
        when("yesterday")
