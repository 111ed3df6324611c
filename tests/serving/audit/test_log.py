"""The audit store on its own: bounded ids, query validation, stream rows amended, batched pruning."""

from __future__ import annotations

import sqlite3
import time

import pytest

from serving.audit import log as audit_log
from serving.audit.log import MAX_ID_CHARS, AuditLog, Event, Query, clean_ids
from serving.errors import InvalidInput

DAY = 86400.0


def _event(at: float, method: str = "/toitsu.v1.SpeakerService/Verify", ids: tuple[str, ...] = ()) -> Event:
    return Event(at, "s", "", method, "OK", "ipv4:127.0.0.1:1", 1.0, ids)


def test_ids_are_distinct_bounded_and_in_order():
    assert clean_ids(["b", "", "a", "b"]) == ("b", "a")
    assert clean_ids(["x" * 10_000]) == ("x" * MAX_ID_CHARS,)
    assert len(clean_ids(str(i) for i in range(50_000))) == audit_log.MAX_IDS_PER_EVENT


@pytest.mark.parametrize(
    "query", [Query(since=5, until=5), Query(since=-1), Query(until=float("inf")), Query(limit=10_001)]
)
def test_bad_queries_are_invalid_input(tmp_path, query):
    trail = AuditLog(tmp_path / "audit.sqlite")
    with pytest.raises(InvalidInput):
        trail.query(query)
    trail.close()


def test_a_stream_row_is_amended_and_the_method_filter_matches_a_part(tmp_path):
    trail = AuditLog(tmp_path / "audit.sqlite")
    row = trail.write(Event(100.0, "s", "", "/toitsu.v1.FaceService/EnrollTracks", "UNFINISHED", "p", 1.0, ("a",)))
    trail.amend(row, "OK", 9.0, ["a", "b"])
    trail.write(_event(101.0))
    (event,) = trail.query(Query(method="FaceService/"))[0]
    assert (event.code, event.ms, sorted(event.identities)) == ("OK", 9.0, ["a", "b"])
    assert [e.method for e in trail.query(Query(method="Verify"))[0]] == ["/toitsu.v1.SpeakerService/Verify"]
    assert len(trail.query(Query())[0]) == 2
    trail.close()


def test_prune_removes_old_events_and_their_ids_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(audit_log, "_PRUNE_BATCH", 3)
    now = 1_000 * DAY
    trail = AuditLog(tmp_path / "audit.sqlite", retention_days=30, clock=lambda: now)
    for n in range(10):
        trail.write(_event(now - 31 * DAY + n, ids=(f"old-{n}",)))
    trail.write(_event(now - 29 * DAY, ids=("new",)))
    assert trail.prune() == 10
    assert [e.identities for e in trail.query(Query())[0]] == [("new",)]
    trail.close()
    with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
        assert conn.execute("SELECT identity FROM event_identities").fetchall() == [("new",)]
    keep_all = AuditLog(tmp_path / "audit.sqlite", retention_days=0, clock=lambda: now + 1e6)
    assert keep_all.prune() == 0
    keep_all.close()


def test_the_wal_is_checkpointed_by_the_background_thread_not_by_a_commit(tmp_path):
    path = tmp_path / "audit.sqlite"
    trail = AuditLog(path)
    for n in range(400):  # past SQLite's 1000-page automatic checkpoint, which is off here
        trail.write(_event(float(n), ids=(f"id-{n}",)))
    before = path.stat().st_size
    assert (tmp_path / "audit.sqlite-wal").stat().st_size > 2000 * 4096  # no commit checkpointed (at 1000 pages)
    trail.start()
    deadline = time.monotonic() + 10
    while path.stat().st_size == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.stat().st_size > before  # the maintenance thread's passive checkpoint did
    trail.close()
