"""The audit trail's store: one SQLite file (``var/audit/audit.sqlite``) in WAL mode.

One write connection behind a lock; every row is one committed transaction *before* the RPC's
response or status goes out (:mod:`serving.audit.trail`). ``synchronous=NORMAL``: in WAL mode a
commit is a ``write()`` into the WAL file without an fsync, so a row survives the gateway being
SIGKILLed the instant after (the kernel has the bytes), at a cost of tens of microseconds; only an
OS crash or power loss may lose the rows since the last checkpoint, which a background thread runs
every :data:`CHECKPOINT_SECONDS` (fsyncing the WAL first), so about the last second of them
(``synchronous=FULL`` would fsync on every RPC). Queries open their own read-only connection,
which WAL lets run beside the writer.

Rows hold ids, names and codes only. ``identity`` values are what the request named (an id that
does not exist is still worth auditing), cut to :data:`MAX_ID_CHARS`, at most
:data:`MAX_IDS_PER_EVENT` per row.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from serving.errors import InvalidInput

log = logging.getLogger("toitsu.audit")

MAX_ID_CHARS = 256
MAX_IDS_PER_EVENT = 2000  # a List page holds at most 1000
DEFAULT_LIMIT, MAX_LIMIT = 100, 10_000
UNFINISHED = "UNFINISHED"  # a stream's row before it ends (and forever if the gateway died meanwhile)
_PRUNE_BATCH = 5000
CHECKPOINT_SECONDS = 1.0  # the WAL is copied into the main file this often, off the RPCs' path
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,             -- Unix seconds when the RPC began
    subject TEXT NOT NULL,        -- the token's subject, or a marker: (open), (unauthenticated)
    token_id TEXT NOT NULL,       -- the public id of the token presented ('' when none)
    method TEXT NOT NULL,         -- /toitsu.v1.SpeakerService/Verify
    code TEXT NOT NULL,           -- OK, NOT_FOUND, UNAUTHENTICATED, ... (UNFINISHED: a stream still open)
    peer TEXT NOT NULL,           -- ipv4:127.0.0.1:53422
    ms REAL NOT NULL);            -- duration in milliseconds
CREATE INDEX IF NOT EXISTS events_at ON events(at);
CREATE INDEX IF NOT EXISTS events_subject ON events(subject, id);
CREATE TABLE IF NOT EXISTS event_identities (
    event INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    PRIMARY KEY (event, identity)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_by_id ON event_identities(identity, event);
"""


@dataclass(frozen=True)
class Event:
    """One audited RPC."""

    at: float
    subject: str
    token_id: str
    method: str
    code: str
    peer: str
    ms: float
    identities: tuple[str, ...] = ()
    id: int = 0


@dataclass(frozen=True)
class Query:
    """Filters of :meth:`AuditLog.query`; empty / zero means no filter."""

    since: float = 0.0  # at >= since
    until: float = 0.0  # at < until
    subject: str = ""  # exact
    identity: str = ""  # exact
    method: str = ""  # a part of the full method name: "Verify", "SpeakerService/", "/toitsu.v1.FaceService/List"
    code: str = ""  # exact status name, e.g. UNAUTHENTICATED
    before_id: int = 0  # only events older than this one (paging)
    limit: int = 0  # 0 = DEFAULT_LIMIT

    def checked(self) -> Query:
        for name in ("since", "until"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidInput(f"{name} must be Unix seconds >= 0, got {value!r}")
        if self.since and self.until and self.since >= self.until:
            raise InvalidInput(f"since ({self.since}) must be before until ({self.until})")
        if self.limit < 0 or self.limit > MAX_LIMIT:
            raise InvalidInput(f"limit {self.limit} is above the limit of {MAX_LIMIT}")
        return self


def clean_ids(ids: Iterable[str]) -> tuple[str, ...]:
    """Distinct, non-empty, bounded ids in first-seen order."""
    seen: dict[str, None] = {}
    for raw in ids:
        if raw and len(seen) < MAX_IDS_PER_EVENT:
            seen.setdefault(raw[:MAX_ID_CHARS], None)
    return tuple(seen)


class AuditLog:
    def __init__(
        self,
        path: Path,
        retention_days: float = 0.0,
        prune_interval_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self._interval = prune_interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise OSError(f"{self.path}: SQLite refused WAL mode ({mode})")
        for pragma in ("synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000", "wal_autocheckpoint=0"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.executescript(_SCHEMA)

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction on the write connection (rolled back if the body fails)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def write(self, event: Event) -> int:
        """Commit one event with its identities; returns its id."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO events(at, subject, token_id, method, code, peer, ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event.at, event.subject, event.token_id, event.method, event.code, event.peer, event.ms),
            )
            event_id = int(cursor.lastrowid or 0)
            self._add_ids(event_id, event.identities)
        return event_id

    def amend(self, event_id: int, code: str, ms: float, identities: Iterable[str]) -> None:
        """A stream's row, written when its first ids went out: its final code, duration and ids."""
        with self._transaction() as conn:
            conn.execute("UPDATE events SET code = ?, ms = ? WHERE id = ?", (code, ms, event_id))
            self._add_ids(event_id, identities)

    def _add_ids(self, event_id: int, identities: Iterable[str]) -> None:
        ids = clean_ids(identities)
        if ids:
            self._conn.executemany(
                "INSERT OR IGNORE INTO event_identities(event, identity) VALUES (?, ?)", [(event_id, i) for i in ids]
            )

    # -- reading ---------------------------------------------------------------------------
    def query(self, q: Query) -> tuple[list[Event], bool]:
        """Matching events, newest first, and whether more matched than the limit."""
        q = q.checked()
        where, args = [], []
        for clause, value in (
            ("e.at >= ?", q.since),
            ("e.at < ?", q.until),
            ("e.subject = ?", q.subject),
            ("instr(e.method, ?) > 0", q.method),
            ("e.code = ?", q.code),
            ("e.id < ?", q.before_id),
            ("e.id IN (SELECT event FROM event_identities WHERE identity = ?)", q.identity),
        ):
            if value:
                where.append(clause)
                args.append(value)
        limit = q.limit or DEFAULT_LIMIT
        sql = (
            "SELECT e.id, e.at, e.subject, e.token_id, e.method, e.code, e.peer, e.ms,"
            " (SELECT json_group_array(identity) FROM event_identities WHERE event = e.id) FROM events e"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY e.id DESC LIMIT ?"
        )
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            rows = conn.execute(sql, [*args, limit + 1]).fetchall()
        finally:
            conn.close()
        events = [
            Event(at, subject, token, method, code, peer, ms, tuple(json.loads(ids)), event_id)
            for event_id, at, subject, token, method, code, peer, ms, ids in rows[:limit]
        ]
        return events, len(rows) > limit

    # -- retention -------------------------------------------------------------------------
    def prune(self) -> int:
        """Delete the events older than ``retention_days`` (0 keeps everything); returns how many."""
        if self.retention_days <= 0:
            return 0
        cutoff, removed = self._clock() - self.retention_days * 86400.0, 0
        while True:  # in batches: writers (every RPC) wait for one batch, not for the whole prune
            with self._lock:
                cursor = self._conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ? LIMIT ?)",
                    (cutoff, _PRUNE_BATCH),
                )  # event_identities rows go with them (ON DELETE CASCADE)
            removed += cursor.rowcount
            if cursor.rowcount < _PRUNE_BATCH:
                break
        if removed:
            log.info("audit: pruned %d events older than %g days", removed, self.retention_days)
        return removed

    def start(self) -> None:
        """Prune now; then, on a daemon thread until :meth:`close`, checkpoint the WAL every
        :data:`CHECKPOINT_SECONDS` and prune every ``prune_interval_seconds``."""
        self.prune()
        if self._worker is None:
            self._worker = threading.Thread(target=self._maintain, name="audit-maintenance", daemon=True)
            self._worker.start()

    def _maintain(self) -> None:
        # SQLite's automatic checkpoint (off on the writer) would run inside whichever RPC's commit
        # crossed 1000 WAL pages: a stall of milliseconds at p99. A passive one here blocks no writer.
        checkpointer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        next_prune = time.monotonic() + self._interval
        try:
            while not self._stop.wait(min(CHECKPOINT_SECONDS, self._interval)):
                try:
                    checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + self._interval
                        self.prune()
                except sqlite3.Error:  # retried at the next pass; the trail keeps being written
                    log.exception("audit: checkpoint or pruning failed")
        finally:
            checkpointer.close()

    def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(5)
        with self._lock:
            self._conn.close()
