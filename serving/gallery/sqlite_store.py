"""The embedded gallery store: one SQLite database in WAL mode with ``synchronous=FULL``.

One write connection, guarded by a lock, runs every write as one ``BEGIN IMMEDIATE`` transaction;
reads use a small pool of read-only connections (each used by one thread at a time), which WAL
lets run next to the writer. ``secure_delete`` overwrites deleted rows (biometric data is
personal data), and a delete ends with :meth:`SqliteStore.checkpoint`, so the WAL's older copies
of those pages go too. Row ids of ``identities`` are AUTOINCREMENT, so an id is never reused.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serving.errors import Unavailable
from serving.gallery.rows import SqlRows

log = logging.getLogger("serving.gallery.store")

_BUSY_MS = 10_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS templates (
    identity_id INTEGER PRIMARY KEY REFERENCES identities(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    model_name TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    num_samples INTEGER NOT NULL CHECK (num_samples > 0));
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    model_name TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS samples_by_identity ON samples(identity_id);
CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    format TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS media_by_identity ON media(identity_id);
-- Face tracks (EnrollTracks): a track id names exactly one sample, so that sending a track again
-- replaces its sample instead of adding one. Added with IF NOT EXISTS: older galleries gain it.
CREATE TABLE IF NOT EXISTS tracks (
    track_id TEXT PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS tracks_by_identity ON tracks(identity_id);
-- Identities an activation left on the previous model version (no stored media to re-embed them
-- from, and the operator chose to keep them there): scoring them says so instead of NOT_FOUND.
CREATE TABLE IF NOT EXISTS kept_on_old (
    external_id TEXT PRIMARY KEY,
    identity_id INTEGER NOT NULL,  -- its row id in the generation it stayed in (ids are shared)
    model_name TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    identity_id INTEGER NOT NULL,
    at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    identity TEXT,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL);
"""


class SqliteStore:
    """Connections to one ``store.sqlite3``. Use :meth:`open`; close with :meth:`close`."""

    backend = "sqlite"

    def __init__(self, path: Path, writer: sqlite3.Connection) -> None:
        self.path = path
        self._writer = writer
        self._write_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = [writer]
        self._closed = False

    @property
    def label(self) -> str:
        return str(self.path)

    @classmethod
    def open(cls, path: Path) -> SqliteStore:
        # check_same_thread=False: the one write connection is only used under self._write_lock.
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_MS / 1000)
        try:
            mode = writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise Unavailable(f"{path}: SQLite refused WAL mode (got {mode!r})")
            for pragma in ("synchronous=FULL", "foreign_keys=ON", "secure_delete=ON", f"busy_timeout={_BUSY_MS}"):
                writer.execute(f"PRAGMA {pragma}")
            writer.executescript(_SCHEMA)
            _migrate(writer)
        except sqlite3.Error as exc:
            writer.close()
            raise Unavailable(f"cannot open gallery store {path}: {exc}") from exc
        return cls(path, writer)

    @contextmanager
    def transaction(self) -> Iterator[SqlRows]:
        """One atomic, durable write: committed when the block ends, rolled back if it raises."""
        with self._write_lock:
            self._check_open()
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield SqlRows(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):  # locked, disk full, I/O error
                    raise Unavailable(f"gallery store {self.path} cannot write: {exc}") from exc
                raise

    @contextmanager
    def reader(self) -> Iterator[SqlRows]:
        """A read-only connection for this thread's exclusive use until the block ends."""
        self._check_open()
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._connect_reader()
        try:
            yield SqlRows(conn)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._idle.append(conn)

    @contextmanager
    def read_snapshot(self) -> Iterator[SqlRows]:
        """A reader inside one read transaction: every query sees the same committed state."""
        with self.reader() as rows:
            rows.execute("BEGIN")
            yield rows

    def _connect_reader(self) -> sqlite3.Connection:
        # check_same_thread=False: a pooled reader moves between threads but is used by one at a time.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_MS / 1000)
        conn.execute("PRAGMA query_only=ON")
        conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        self._all.append(conn)
        return conn

    def checkpoint(self) -> bool:
        """Copy the WAL into the main file and truncate the WAL to zero bytes; True when it did.

        After a delete (``secure_delete`` zeroed the rows in the pages it wrote), this is what takes
        the older copies of those pages, still in the WAL, off the disk. It waits (busy timeout) for
        readers on an older snapshot to finish; False when one outlasted that, or it failed."""
        with self._write_lock:
            self._check_open()
            try:
                busy, _, _ = self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("gallery store %s: WAL checkpoint failed: %s", self.path, exc)
                return False
        return busy == 0

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: "ok", or the first problems it found."""
        with self.reader() as rows:
            try:
                found = rows.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.DatabaseError as exc:  # damage bad enough that the check itself cannot run
                return str(exc)
        return "; ".join(str(r[0]) for r in found[:5])

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"gallery store {self.path} is closed")

    def close(self) -> None:
        """Close every connection (callers must have stopped using them); idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # a checkpoint is an optimisation; the WAL is replayed on the next open anyway
            for conn in self._all:
                conn.close()
            self._idle.clear()


def _migrate(conn: sqlite3.Connection) -> None:
    """Schema 1 → 2: ``media.sample_id`` links each stored clip, image or chip to the sample it made,
    so that a re-embed rebuilds each sample (and each face track) from its own media. Rows written
    before have NULL there; :mod:`serving.gallery.reembed` states how it treats them."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(media)")}
    if "sample_id" not in columns:
        conn.execute("ALTER TABLE media ADD COLUMN sample_id INTEGER REFERENCES samples(id) ON DELETE CASCADE")
    conn.execute("CREATE INDEX IF NOT EXISTS media_by_sample ON media(sample_id)")
