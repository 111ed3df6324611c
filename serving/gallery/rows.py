"""The gallery's row operations, written once in the SQL that SQLite and PostgreSQL share.

A :class:`SqlRows` wraps one database connection for the length of a transaction or a read, and
is what :meth:`GalleryStore.transaction` and :meth:`GalleryStore.reader` hand out. Statements use
``?`` placeholders and ``INSERT ... RETURNING``; a backend's subclass adapts the placeholder
(:meth:`SqlRows._sql`). ``execute`` stays public for the few modules (and tests) that keep rows of
their own beside the gallery's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from serving.gallery.types import IdentityInfo, Media, ModelBinding

_CHUNK = 500  # ids per IN (...) list: under SQLite's default host-parameter limit


class SqlRows:
    """Row operations on one connection (a DB-API connection: ``execute`` returns a cursor)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _sql(self, sql: str) -> str:
        return sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); the driver's cursor."""
        return self.conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            self.conn.executemany(self._sql(sql), rows)

    def _insert_id(self, sql: str, params: Sequence[Any]) -> int:
        return int(self.execute(sql + " RETURNING id", params).fetchone()[0])

    # --- meta -----------------------------------------------------------------------------------

    def get_meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.execute("SELECT key, value FROM meta").fetchall()}

    def set_meta(self, values: dict[str, str]) -> None:
        self.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            sorted(values.items()),
        )

    # --- identities, templates, samples, media ---------------------------------------------------

    def find_identity(self, external: str) -> tuple[int, str] | None:
        """(row id, metadata JSON) of an identity, or None."""
        row = self.execute("SELECT id, metadata FROM identities WHERE external_id = ?", (external,)).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def insert_identity(self, external: str, now: float, metadata: dict[str, str] | None) -> int:
        return self._insert_id(
            "INSERT INTO identities(external_id, created_at, updated_at, metadata) VALUES (?, ?, ?, ?)",
            (external, now, now, json.dumps(metadata or {}, sort_keys=True)),
        )

    def touch_identity(self, row_id: int, now: float, metadata: dict[str, str] | None) -> None:
        if metadata is None:
            self.execute("UPDATE identities SET updated_at = ? WHERE id = ?", (now, row_id))
        else:
            self.execute(
                "UPDATE identities SET updated_at = ?, metadata = ? WHERE id = ?",
                (now, json.dumps(metadata, sort_keys=True), row_id),
            )

    def put_template(self, row_id: int, vector: np.ndarray, model: ModelBinding, n: int) -> None:
        self.execute(
            "INSERT INTO templates(identity_id, vector, model_name, model_version, num_samples) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(identity_id) DO UPDATE SET vector = excluded.vector, "
            "model_name = excluded.model_name, model_version = excluded.model_version, "
            "num_samples = excluded.num_samples",
            (row_id, blob(vector), model.name, model.version, n),
        )

    def add_samples(self, row_id: int, vectors: np.ndarray, model: ModelBinding, now: float) -> list[int]:
        """Insert an identity's samples; their row ids, in order."""
        return [self.add_sample(row_id, v, model, now) for v in vectors]

    def add_sample(self, row_id: int, vector: np.ndarray, model: ModelBinding, now: float) -> int:
        """One sample of an identity; its row id (for rows that refer to it, such as a track's)."""
        return self._insert_id(
            "INSERT INTO samples(identity_id, vector, model_name, model_version, created_at) VALUES (?, ?, ?, ?, ?)",
            (row_id, blob(vector), model.name, model.version, now),
        )

    def remove_sample(self, sample_id: int) -> None:
        """Delete one sample (rows that refer to it, such as its track's, go with it: ON DELETE CASCADE)."""
        self.execute("DELETE FROM samples WHERE id = ?", (sample_id,))

    def external_id(self, row_id: int) -> str:
        return str(self.execute("SELECT external_id FROM identities WHERE id = ?", (row_id,)).fetchone()[0])

    def samples(self, row_id: int, dim: int) -> np.ndarray:
        """[n, dim] float32: an identity's stored per-sample embeddings, oldest first."""
        rows = self.execute("SELECT vector FROM samples WHERE identity_id = ? ORDER BY id", (row_id,)).fetchall()
        return vectors([r[0] for r in rows], dim)

    def add_media(self, row_id: int, items: Sequence[Media], now: float, sample_id: int | None = None) -> None:
        """Store enrollment media; ``sample_id`` names the sample they made (None: not known)."""
        self.executemany(
            "INSERT INTO media(identity_id, format, data, created_at, sample_id) VALUES (?, ?, ?, ?, ?)",
            [(row_id, m.format, m.data, now, sample_id) for m in items],
        )

    def media(self, row_id: int) -> list[Media]:
        rows = self.execute("SELECT data, format FROM media WHERE identity_id = ? ORDER BY id", (row_id,)).fetchall()
        return [Media(bytes(data), fmt) for data, fmt in rows]

    def kept_on_old(self, external: str) -> ModelBinding | None:
        """The model an identity was left on by an activation (it has no template here), or None."""
        row = self.execute(
            "SELECT model_name, model_version FROM kept_on_old WHERE external_id = ?", (external,)
        ).fetchone()
        return ModelBinding(row[0], int(row[1])) if row else None

    def keep_on_old(self, external: str, row_id: int, model: ModelBinding, now: float) -> None:
        self.execute(
            "INSERT INTO kept_on_old(external_id, identity_id, model_name, model_version, at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(external_id) DO UPDATE SET identity_id = excluded.identity_id, "
            "model_name = excluded.model_name, model_version = excluded.model_version, at = excluded.at",
            (external, row_id, model.name, model.version, now),
        )

    def forget_kept(self, external: str) -> bool:
        """Drop an identity's kept-on-old record (it was enrolled again, deleted or re-embedded)."""
        return int(self.execute("DELETE FROM kept_on_old WHERE external_id = ?", (external,)).rowcount) > 0

    def clear_enrollment(self, row_id: int) -> None:
        """Drop an identity's samples, tracks and media (REPLACE mode, and the first half of a delete)."""
        for table in ("tracks", "samples", "media"):
            self.execute(f"DELETE FROM {table} WHERE identity_id = ?", (row_id,))

    def delete_identity(self, row_id: int) -> None:
        self.clear_enrollment(row_id)
        self.execute("DELETE FROM templates WHERE identity_id = ?", (row_id,))
        self.execute("DELETE FROM identities WHERE id = ?", (row_id,))

    # --- face tracks (serving.gallery.tracks) ----------------------------------------------------

    def find_track(self, track_id: str) -> tuple[int, int] | None:
        """(identity row id, sample row id) of an enrolled track, or None."""
        row = self.execute("SELECT identity_id, sample_id FROM tracks WHERE track_id = ?", (track_id,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def add_track(self, track_id: str, row_id: int, sample_id: int, now: float) -> None:
        self.execute(
            "INSERT INTO tracks(track_id, identity_id, sample_id, updated_at) VALUES (?, ?, ?, ?)",
            (track_id, row_id, sample_id, now),
        )

    def drop_track_of(self, sample_id: int) -> None:
        self.execute("DELETE FROM tracks WHERE sample_id = ?", (sample_id,))

    # --- row-id floor (generations share row ids: serving.gallery.reembed.sync_floor) -----------------

    def id_floor(self) -> int:
        """The highest identity row id ever handed out (AUTOINCREMENT's record)."""
        row = self.execute("SELECT seq FROM sqlite_sequence WHERE name = 'identities'").fetchone()
        return int(row[0]) if row else 0

    def raise_id_floor(self, floor: int) -> None:
        """Hand out only row ids above ``floor`` from now on."""
        current = self.execute("SELECT seq FROM sqlite_sequence WHERE name = 'identities'").fetchone()
        if current is None:
            self.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('identities', ?)", (floor,))
        elif int(current[0]) < floor:
            self.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'identities'", (floor,))

    # --- bulk ------------------------------------------------------------------------------------

    def bulk_create(
        self, items: Sequence[tuple[str, np.ndarray, np.ndarray]], model: ModelBinding, now: float, actor: str
    ) -> tuple[int, dict[str, int]]:
        """Insert new identities (external id, unit samples [n, dim], template) in the caller's transaction.

        Returns the sequence number of the last change-log row and each identity's row id. Ids must
        be new (the UNIQUE constraint raises otherwise, and the caller's transaction rolls back).
        """
        self.executemany(
            "INSERT INTO identities(external_id, created_at, updated_at, metadata) VALUES (?, ?, ?, '{}')",
            [(ext, now, now) for ext, _, _ in items],
        )
        row_of = self._row_ids([ext for ext, _, _ in items])
        self.executemany(
            "INSERT INTO templates(identity_id, vector, model_name, model_version, num_samples) VALUES (?, ?, ?, ?, ?)",
            [(row_of[ext], blob(t), model.name, model.version, len(s)) for ext, s, t in items],
        )
        self.executemany(
            "INSERT INTO samples(identity_id, vector, model_name, model_version, created_at) VALUES (?, ?, ?, ?, ?)",
            [(row_of[ext], blob(v), model.name, model.version, now) for ext, s, _ in items for v in s],
        )
        self.executemany(
            "INSERT INTO changes(op, identity_id, at) VALUES ('upsert', ?, ?)",
            [(row_of[ext], now) for ext, _, _ in items],
        )
        self.executemany(
            "INSERT INTO audit(at, action, identity, actor, detail) VALUES (?, 'enroll', ?, ?, ?)",
            [
                (now, ext, actor, json.dumps({"mode": "create", "samples": len(s), "model": str(model), "bulk": True}))
                for ext, s, _ in items
            ],
        )
        return self.max_sequence(), row_of

    def _row_ids(self, externals: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(externals), _CHUNK):
            chunk = list(externals[start : start + _CHUNK])
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT external_id, id FROM identities WHERE external_id IN ({marks})"
            found.update((str(e), int(i)) for e, i in self.execute(sql, chunk))
        return found

    def existing(self, externals: Sequence[str]) -> set[str]:
        """Those of ``externals`` that are enrolled."""
        return set(self._row_ids(externals))

    # --- change log and audit ----------------------------------------------------------------------

    def log_change(self, op: str, row_id: int, now: float) -> int:
        return int(
            self.execute(
                "INSERT INTO changes(op, identity_id, at) VALUES (?, ?, ?) RETURNING seq", (op, row_id, now)
            ).fetchone()[0]
        )

    def max_sequence(self) -> int:
        return int(self.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])

    def changed_since(self, seq: int) -> list[int]:
        """Row ids touched by changes after ``seq`` (each once)."""
        return [int(r[0]) for r in self.execute("SELECT DISTINCT identity_id FROM changes WHERE seq > ?", (seq,))]

    def audit(self, now: float, action: str, external: str | None, actor: str, detail: dict[str, object]) -> None:
        """A row of this gallery's change history (it travels with the gallery); the gateway's trail of
        every call, reads included, is ``serving.audit``. ``detail``: counts and names, never biometric data."""
        self.execute(
            "INSERT INTO audit(at, action, identity, actor, detail) VALUES (?, ?, ?, ?, ?)",
            (now, action, external, actor, json.dumps(detail, sort_keys=True)),
        )

    def audit_log(self, external: str | None = None, limit: int = 1000) -> list[dict[str, object]]:
        sql = "SELECT at, action, identity, actor, detail FROM audit"
        args: tuple[Any, ...] = ()
        if external is not None:
            sql, args = sql + " WHERE identity = ?", (external,)
        rows = self.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            {"at": float(at), "action": action, "identity": ident, "actor": actor, "detail": json.loads(detail)}
            for at, action, ident, actor, detail in rows
        ]

    # --- reads for search, verification and listing -------------------------------------------------

    _INFO = (
        "SELECT i.external_id, t.num_samples, i.created_at, i.updated_at, t.model_name, t.model_version, "
        "EXISTS(SELECT 1 FROM media m WHERE m.identity_id = i.id), i.metadata "
        "FROM identities i JOIN templates t ON t.identity_id = i.id "
    )

    def info(self, external: str) -> IdentityInfo | None:
        row = self.execute(self._INFO + "WHERE i.external_id = ?", (external,)).fetchone()
        return _info(row) if row else None

    def page(self, after: str, limit: int) -> list[IdentityInfo]:
        """Identities in external-id order, strictly after ``after`` (keyset pagination)."""
        rows = self.execute(self._INFO + "WHERE i.external_id > ? ORDER BY i.external_id LIMIT ?", (after, limit))
        return [_info(r) for r in rows]

    def template(self, external: str, dim: int) -> np.ndarray | None:
        row = self.execute(
            "SELECT t.vector FROM identities i JOIN templates t ON t.identity_id = i.id WHERE i.external_id = ?",
            (external,),
        ).fetchone()
        return vectors([row[0]], dim)[0] if row else None

    def external_ids(self, row_ids: Iterable[int]) -> dict[int, str]:
        ids = [int(i) for i in row_ids]
        found: dict[int, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, external_id FROM identities WHERE id IN ({marks})"
            found.update((int(i), str(e)) for i, e in self.execute(sql, chunk))
        return found

    def templates_for(self, row_ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(row ids [m], templates [m, dim]) of those of ``row_ids`` that still exist."""
        ids, blobs = [], []
        for start in range(0, len(row_ids), _CHUNK):
            chunk = [int(i) for i in row_ids[start : start + _CHUNK]]
            marks = ",".join("?" * len(chunk))
            for row_id, data in self.execute(
                f"SELECT identity_id, vector FROM templates WHERE identity_id IN ({marks})", chunk
            ):
                ids.append(int(row_id))
                blobs.append(data)
        return np.asarray(ids, dtype=np.int64), vectors(blobs, dim)

    def all_templates(self, dim: int, chunk: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every template in row-id order, as (row ids, vectors) chunks."""
        last = 0
        while True:
            rows = self.execute(
                "SELECT identity_id, vector FROM templates WHERE identity_id > ? ORDER BY identity_id LIMIT ?",
                (last, chunk),
            ).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            yield np.asarray([r[0] for r in rows], dtype=np.int64), vectors([r[1] for r in rows], dim)

    def count(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM templates").fetchone()[0])

    def enrollment_counts(self, external: str) -> dict[str, int]:
        """Rows an identity owns in each table (for tests and for checking a delete)."""
        row = self.find_identity(external)
        if row is None:
            return {"identities": 0, "templates": 0, "samples": 0, "media": 0, "tracks": 0}
        counts = {"identities": 1}
        for table in ("templates", "samples", "media", "tracks"):
            sql = f"SELECT COUNT(*) FROM {table} WHERE identity_id = ?"
            counts[table] = int(self.execute(sql, (row[0],)).fetchone()[0])
        return counts


def now() -> float:
    return time.time()


def blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    out = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim)
    return out.astype(np.float32)


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
