"""The gallery's source of truth: one SQLite database in WAL mode with ``synchronous=FULL``.

One write connection, guarded by a lock, runs every write as one ``BEGIN IMMEDIATE`` transaction;
reads use a small pool of read-only connections (each used by one thread at a time), which WAL
lets run next to the writer. ``secure_delete`` overwrites deleted rows (biometric data is
personal data), and a delete ends with :meth:`Store.checkpoint`, so the WAL's older copies of
those pages go too. Row ids of ``identities`` are AUTOINCREMENT, so an id is never reused: it is the
FAISS id, and a change-log entry always names exactly one identity's life.

The query helpers below take the connection they run on, so the same helper serves a write
transaction and a read.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from serving.errors import Unavailable
from serving.gallery.types import IdentityInfo, Media, ModelBinding

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: media.sample_id, kept_on_old (re-embedding after a model change)
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


class Store:
    """Connections to one ``store.sqlite3``. Use :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path, writer: sqlite3.Connection) -> None:
        self.path = path
        self._writer = writer
        self._write_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = [writer]
        self._closed = False

    @classmethod
    def open(cls, path: Path) -> Store:
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
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable write: committed when the block ends, rolled back if it raises."""
        with self._write_lock:
            self._check_open()
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):  # locked, disk full, I/O error
                    raise Unavailable(f"gallery store {self.path} cannot write: {exc}") from exc
                raise

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection for this thread's exclusive use until the block ends."""
        self._check_open()
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._connect_reader()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._idle.append(conn)

    @contextmanager
    def read_snapshot(self) -> Iterator[sqlite3.Connection]:
        """A reader inside one read transaction: every query sees the same committed state."""
        with self.reader() as conn:
            conn.execute("BEGIN")
            yield conn

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


# --- meta -------------------------------------------------------------------------------------


def get_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def set_meta(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        sorted(values.items()),
    )


# --- identities, templates, samples, media -------------------------------------------------------


def find_identity(conn: sqlite3.Connection, external: str) -> tuple[int, str] | None:
    """(row id, metadata JSON) of an identity, or None."""
    return conn.execute("SELECT id, metadata FROM identities WHERE external_id = ?", (external,)).fetchone()


def insert_identity(conn: sqlite3.Connection, external: str, now: float, metadata: dict[str, str] | None) -> int:
    cur = conn.execute(
        "INSERT INTO identities(external_id, created_at, updated_at, metadata) VALUES (?, ?, ?, ?)",
        (external, now, now, json.dumps(metadata or {}, sort_keys=True)),
    )
    assert cur.lastrowid is not None  # set by every INSERT
    return cur.lastrowid


def touch_identity(conn: sqlite3.Connection, row_id: int, now: float, metadata: dict[str, str] | None) -> None:
    if metadata is None:
        conn.execute("UPDATE identities SET updated_at = ? WHERE id = ?", (now, row_id))
    else:
        conn.execute(
            "UPDATE identities SET updated_at = ?, metadata = ? WHERE id = ?",
            (now, json.dumps(metadata, sort_keys=True), row_id),
        )


def put_template(conn: sqlite3.Connection, row_id: int, vector: np.ndarray, model: ModelBinding, n: int) -> None:
    conn.execute(
        "INSERT INTO templates(identity_id, vector, model_name, model_version, num_samples) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(identity_id) DO UPDATE SET vector = excluded.vector, "
        "model_name = excluded.model_name, model_version = excluded.model_version, "
        "num_samples = excluded.num_samples",
        (row_id, _blob(vector), model.name, model.version, n),
    )


def add_samples(
    conn: sqlite3.Connection, row_id: int, vectors: np.ndarray, model: ModelBinding, now: float
) -> list[int]:
    """Insert an identity's samples; their row ids, in order."""
    return [add_sample(conn, row_id, v, model, now) for v in vectors]


def add_sample(conn: sqlite3.Connection, row_id: int, vector: np.ndarray, model: ModelBinding, now: float) -> int:
    """One sample of an identity; returns its row id (for rows that refer to it, such as a track's)."""
    cursor = conn.execute(
        "INSERT INTO samples(identity_id, vector, model_name, model_version, created_at) VALUES (?, ?, ?, ?, ?)",
        (row_id, _blob(vector), model.name, model.version, now),
    )
    assert cursor.lastrowid is not None  # set by every INSERT
    return cursor.lastrowid


def remove_sample(conn: sqlite3.Connection, sample_id: int) -> None:
    """Delete one sample (rows that refer to it, such as its track's, go with it: ON DELETE CASCADE)."""
    conn.execute("DELETE FROM samples WHERE id = ?", (sample_id,))


def external_id(conn: sqlite3.Connection, row_id: int) -> str:
    return str(conn.execute("SELECT external_id FROM identities WHERE id = ?", (row_id,)).fetchone()[0])


def samples(conn: sqlite3.Connection, row_id: int, dim: int) -> np.ndarray:
    """[n, dim] float32: an identity's stored per-sample embeddings, oldest first."""
    rows = conn.execute("SELECT vector FROM samples WHERE identity_id = ? ORDER BY id", (row_id,)).fetchall()
    return _vectors([r[0] for r in rows], dim)


def add_media(
    conn: sqlite3.Connection, row_id: int, items: Sequence[Media], now: float, sample_id: int | None = None
) -> None:
    """Store enrollment media; ``sample_id`` names the sample they made (None: not known)."""
    conn.executemany(
        "INSERT INTO media(identity_id, format, data, created_at, sample_id) VALUES (?, ?, ?, ?, ?)",
        [(row_id, m.format, m.data, now, sample_id) for m in items],
    )


def kept_on_old(conn: sqlite3.Connection, external: str) -> ModelBinding | None:
    """The model an identity was left on by an activation (it has no template here), or None."""
    row = conn.execute(
        "SELECT model_name, model_version FROM kept_on_old WHERE external_id = ?", (external,)
    ).fetchone()
    return ModelBinding(row[0], int(row[1])) if row else None


def keep_on_old(conn: sqlite3.Connection, external: str, row_id: int, model: ModelBinding, now: float) -> None:
    conn.execute(
        "INSERT INTO kept_on_old(external_id, identity_id, model_name, model_version, at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(external_id) DO UPDATE SET identity_id = excluded.identity_id, "
        "model_name = excluded.model_name, model_version = excluded.model_version, at = excluded.at",
        (external, row_id, model.name, model.version, now),
    )


def forget_kept(conn: sqlite3.Connection, external: str) -> bool:
    """Drop an identity's kept-on-old record (it was enrolled again, deleted or re-embedded)."""
    return conn.execute("DELETE FROM kept_on_old WHERE external_id = ?", (external,)).rowcount > 0


def media(conn: sqlite3.Connection, row_id: int) -> list[Media]:
    rows = conn.execute("SELECT data, format FROM media WHERE identity_id = ? ORDER BY id", (row_id,)).fetchall()
    return [Media(bytes(data), fmt) for data, fmt in rows]


def clear_enrollment(conn: sqlite3.Connection, row_id: int) -> None:
    """Drop an identity's samples, tracks and media (REPLACE mode, and the first half of a delete)."""
    conn.execute("DELETE FROM tracks WHERE identity_id = ?", (row_id,))
    conn.execute("DELETE FROM samples WHERE identity_id = ?", (row_id,))
    conn.execute("DELETE FROM media WHERE identity_id = ?", (row_id,))


def delete_identity(conn: sqlite3.Connection, row_id: int) -> None:
    clear_enrollment(conn, row_id)
    conn.execute("DELETE FROM templates WHERE identity_id = ?", (row_id,))
    conn.execute("DELETE FROM identities WHERE id = ?", (row_id,))


def bulk_create(
    conn: sqlite3.Connection,
    items: Sequence[tuple[str, np.ndarray, np.ndarray]],
    model: ModelBinding,
    now: float,
    actor: str,
) -> tuple[int, dict[str, int]]:
    """Insert new identities (external id, unit samples [n, dim], template) in the caller's transaction.

    Returns the sequence number of the last change-log row and each identity's row id. Ids must
    be new (the UNIQUE constraint raises otherwise, and the caller's transaction rolls back).
    """
    before = conn.execute("SELECT COALESCE(MAX(id), 0) FROM identities").fetchone()[0]
    conn.executemany(
        "INSERT INTO identities(external_id, created_at, updated_at, metadata) VALUES (?, ?, ?, '{}')",
        [(ext, now, now) for ext, _, _ in items],
    )
    row_of = dict(conn.execute("SELECT external_id, id FROM identities WHERE id > ?", (before,)).fetchall())
    conn.executemany(
        "INSERT INTO templates(identity_id, vector, model_name, model_version, num_samples) VALUES (?, ?, ?, ?, ?)",
        [(row_of[ext], _blob(t), model.name, model.version, len(s)) for ext, s, t in items],
    )
    conn.executemany(
        "INSERT INTO samples(identity_id, vector, model_name, model_version, created_at) VALUES (?, ?, ?, ?, ?)",
        [(row_of[ext], _blob(v), model.name, model.version, now) for ext, s, _ in items for v in s],
    )
    conn.executemany(
        "INSERT INTO changes(op, identity_id, at) VALUES ('upsert', ?, ?)", [(row_of[ext], now) for ext, _, _ in items]
    )
    conn.executemany(
        "INSERT INTO audit(at, action, identity, actor, detail) VALUES (?, 'enroll', ?, ?, ?)",
        [
            (now, ext, actor, json.dumps({"mode": "create", "samples": len(s), "model": str(model), "bulk": True}))
            for ext, s, _ in items
        ],
    )
    return max_sequence(conn), row_of


def existing(conn: sqlite3.Connection, externals: Sequence[str]) -> set[str]:
    """Those of ``externals`` that are enrolled."""
    found: set[str] = set()
    for start in range(0, len(externals), 500):
        chunk = list(externals[start : start + 500])
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0] for r in conn.execute(f"SELECT external_id FROM identities WHERE external_id IN ({marks})", chunk)
        )
    return found


# --- change log and audit -----------------------------------------------------------------------


def log_change(conn: sqlite3.Connection, op: str, row_id: int, now: float) -> int:
    cur = conn.execute("INSERT INTO changes(op, identity_id, at) VALUES (?, ?, ?)", (op, row_id, now))
    assert cur.lastrowid is not None  # set by every INSERT
    return cur.lastrowid


def max_sequence(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])


def changed_since(conn: sqlite3.Connection, seq: int) -> list[int]:
    """Row ids touched by changes after ``seq`` (each once)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT identity_id FROM changes WHERE seq > ?", (seq,))]


def audit(
    conn: sqlite3.Connection, now: float, action: str, external: str | None, actor: str, detail: dict[str, object]
) -> None:
    """A row of this gallery's change history (it travels with the gallery); the gateway's trail of
    every call, reads included, is ``serving.audit``. ``detail``: counts and names, never biometric data."""
    conn.execute(
        "INSERT INTO audit(at, action, identity, actor, detail) VALUES (?, ?, ?, ?, ?)",
        (now, action, external, actor, json.dumps(detail, sort_keys=True)),
    )


def audit_log(conn: sqlite3.Connection, external: str | None = None, limit: int = 1000) -> list[dict[str, object]]:
    sql = "SELECT at, action, identity, actor, detail FROM audit"
    args: tuple = ()
    if external is not None:
        sql, args = sql + " WHERE identity = ?", (external,)
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    return [
        {"at": at, "action": action, "identity": ident, "actor": actor, "detail": json.loads(detail)}
        for at, action, ident, actor, detail in rows
    ]


# --- reads for search, verification and listing ---------------------------------------------------

_INFO = (
    "SELECT i.external_id, t.num_samples, i.created_at, i.updated_at, t.model_name, t.model_version, "
    "EXISTS(SELECT 1 FROM media m WHERE m.identity_id = i.id), i.metadata "
    "FROM identities i JOIN templates t ON t.identity_id = i.id "
)


def info(conn: sqlite3.Connection, external: str) -> IdentityInfo | None:
    row = conn.execute(_INFO + "WHERE i.external_id = ?", (external,)).fetchone()
    return _info(row) if row else None


def page(conn: sqlite3.Connection, after: str, limit: int) -> list[IdentityInfo]:
    """Identities in external-id order, strictly after ``after`` (keyset pagination)."""
    rows = conn.execute(_INFO + "WHERE i.external_id > ? ORDER BY i.external_id LIMIT ?", (after, limit))
    return [_info(r) for r in rows]


def _info(row: tuple) -> IdentityInfo:
    ext, n, created, updated, name, version, has_media, metadata = row
    return IdentityInfo(
        ext,
        int(n),
        float(created),
        float(updated),
        ModelBinding(name, int(version)),
        bool(has_media),
        json.loads(metadata),
    )


def template(conn: sqlite3.Connection, external: str, dim: int) -> np.ndarray | None:
    row = conn.execute(
        "SELECT t.vector FROM identities i JOIN templates t ON t.identity_id = i.id WHERE i.external_id = ?",
        (external,),
    ).fetchone()
    return _vectors([row[0]], dim)[0] if row else None


def external_ids(conn: sqlite3.Connection, row_ids: Iterable[int]) -> dict[int, str]:
    ids = [int(i) for i in row_ids]
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return dict(conn.execute(f"SELECT id, external_id FROM identities WHERE id IN ({marks})", ids).fetchall())


def templates_for(conn: sqlite3.Connection, row_ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(row ids [m], templates [m, dim]) of those of ``row_ids`` that still exist."""
    ids, blobs = [], []
    for start in range(0, len(row_ids), 500):
        chunk = [int(i) for i in row_ids[start : start + 500]]
        marks = ",".join("?" * len(chunk))
        for row_id, blob in conn.execute(
            f"SELECT identity_id, vector FROM templates WHERE identity_id IN ({marks})", chunk
        ):
            ids.append(row_id)
            blobs.append(blob)
    return np.asarray(ids, dtype=np.int64), _vectors(blobs, dim)


def all_templates(conn: sqlite3.Connection, dim: int, chunk: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every template in row-id order, as (row ids, vectors) chunks."""
    last = 0
    while True:
        rows = conn.execute(
            "SELECT identity_id, vector FROM templates WHERE identity_id > ? ORDER BY identity_id LIMIT ?",
            (last, chunk),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        yield np.asarray([r[0] for r in rows], dtype=np.int64), _vectors([r[1] for r in rows], dim)


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0])


def enrollment_counts(conn: sqlite3.Connection, external: str) -> dict[str, int]:
    """Rows an identity owns in each table (for tests and for checking a delete)."""
    row = find_identity(conn, external)
    if row is None:
        return {"identities": 0, "templates": 0, "samples": 0, "media": 0, "tracks": 0}
    row_id = row[0]
    counts = {"identities": 1}
    for table in ("templates", "samples", "media", "tracks"):
        counts[table] = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE identity_id = ?", (row_id,)).fetchone()[0]
    return counts


def now() -> float:
    return time.time()


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    out = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim)
    return out.astype(np.float32)
