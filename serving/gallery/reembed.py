"""Copying identities from one gallery generation into another with new embeddings (activation and
rollback, ``serving.activation``): what to read from the source, and one store transaction per
identity in the target.

Row ids are kept: an identity has the same row id (= FAISS id) in every generation, so a change
in the source's log names the row to change in the target, deletions included. Each sample is
rebuilt from the media that made it (``media.sample_id``, schema 2): one clip or image, or the
chips of one face track, whose re-embedded mean is the track's one sample again.

Rows from before schema 2 have no link. Stated fallback: an identity without face tracks whose
unlinked media are exactly as many as its samples is paired in order (every enrollment stored
its media, one item a sample); any other identity with a sample not covered by media cannot be
re-embedded and falls under the activation's policy for identities without stored media.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.gallery import store as st
from serving.gallery import validate
from serving.gallery.gallery import Gallery
from serving.gallery.rows import SqlRows
from serving.gallery.types import Media, ModelBinding
from serving.gallery.writes import Write


@dataclass(frozen=True)
class StoredSample:
    """One sample as the source stored it: the media that made it and its track, if any."""

    media: tuple[Media, ...]
    track_id: str | None = None


@dataclass(frozen=True)
class StoredIdentity:
    """An identity read from the source in one read transaction.

    ``samples`` is empty and ``problem`` says why when it cannot be re-embedded."""

    row_id: int
    external: str
    metadata: dict[str, str]
    created_at: float
    samples: tuple[StoredSample, ...]
    problem: str = ""


def position(gallery: Gallery) -> tuple[int, list[int]]:
    """(change-log sequence, every identity's row id) seen in one read transaction: a re-embed
    that copies these rows and then replays the changes after that sequence misses nothing."""
    with gallery.reader() as conn:
        conn.execute("BEGIN")
        sequence = conn.max_sequence()
        rows = [int(r[0]) for r in conn.execute("SELECT id FROM identities ORDER BY id")]
    return sequence, rows


def changes(gallery: Gallery, since: int) -> tuple[int, list[int]]:
    """(the latest sequence, row ids changed after ``since``), in one read transaction."""
    with gallery.reader() as conn:
        conn.execute("BEGIN")
        return conn.max_sequence(), sorted(conn.changed_since(since))


def without_media(gallery: Gallery) -> list[str]:
    """Identities that cannot be re-embedded (cheap: counts only), sorted; see the module doc."""
    with gallery.reader() as conn:
        rows = conn.execute(
            "SELECT i.external_id, "
            "(SELECT COUNT(*) FROM samples s WHERE s.identity_id = i.id), "
            "(SELECT COUNT(*) FROM samples s WHERE s.identity_id = i.id "
            "   AND EXISTS (SELECT 1 FROM media m WHERE m.sample_id = s.id)), "
            "(SELECT COUNT(*) FROM media m WHERE m.identity_id = i.id AND m.sample_id IS NULL), "
            "(SELECT COUNT(*) FROM tracks t WHERE t.identity_id = i.id) "
            "FROM identities i ORDER BY i.external_id"
        ).fetchall()
    return [ext for ext, n, linked, unlinked, tracks in rows if _problem(n, linked, unlinked, tracks)]


def read(gallery: Gallery, row_id: int) -> StoredIdentity | None:
    """The identity with that row id, its samples grouped with their media; None if it is gone."""
    with gallery.reader() as conn:
        conn.execute("BEGIN")
        row = conn.execute(
            "SELECT external_id, metadata, created_at FROM identities WHERE id = ?", (row_id,)
        ).fetchone()
        if row is None:
            return None
        external, metadata, created = str(row[0]), json.loads(row[1]), float(row[2])
        ordered = conn.execute("SELECT id FROM samples WHERE identity_id = ? ORDER BY id", (row_id,))
        sample_ids = [int(r[0]) for r in ordered]
        tracks = dict(conn.execute("SELECT sample_id, track_id FROM tracks WHERE identity_id = ?", (row_id,)))
        linked: dict[int, list[Media]] = {}
        unlinked: list[Media] = []
        for data, fmt, sample in conn.execute(
            "SELECT data, format, sample_id FROM media WHERE identity_id = ? ORDER BY id", (row_id,)
        ):
            (unlinked if sample is None else linked.setdefault(int(sample), [])).append(Media(bytes(data), fmt))
    covered = sum(1 for s in sample_ids if s in linked)
    problem = _problem(len(sample_ids), covered, len(unlinked), len(tracks))
    if problem:
        return StoredIdentity(row_id, external, metadata, created, (), problem)
    if covered == 0:  # legacy rows, one unlinked item per sample, in order
        linked = {s: [m] for s, m in zip(sample_ids, unlinked)}
    samples = tuple(StoredSample(tuple(linked[s]), tracks.get(s)) for s in sample_ids)
    return StoredIdentity(row_id, external, metadata, created, samples)


def _problem(samples: int, linked: int, unlinked: int, tracks: int) -> str:
    if samples == 0:
        return "no stored samples"
    if linked == samples:
        return ""
    if linked == 0 and tracks == 0 and unlinked == samples:
        return ""
    if linked == 0 and unlinked == 0:
        return "no stored media"
    return f"{samples - linked} of its {samples} samples have no stored media linked to them"


def write(target: Gallery, identity: StoredIdentity, vectors: np.ndarray, *, actor: str) -> None:
    """Commit ``identity`` into ``target`` with ``vectors`` [n_samples, D] (one per sample, any
    norm): same row id, metadata, media and tracks; template = mean of the unit samples."""
    unit = validate.embeddings(vectors, target.dim, max(len(vectors), 1))
    template = validate.template(unit)
    binding = target.binding

    def change(conn: SqlRows) -> Write[None]:
        now, deletes = st.now(), []
        other = conn.find_identity(identity.external)
        if other is not None and other[0] != identity.row_id:  # deleted and enrolled again in the source
            conn.delete_identity(other[0])
            conn.log_change("delete", other[0], now)
            deletes.append(other[0])
        if conn.execute("SELECT 1 FROM identities WHERE id = ?", (identity.row_id,)).fetchone():
            conn.clear_enrollment(identity.row_id)
            conn.execute(
                "UPDATE identities SET external_id = ?, metadata = ?, updated_at = ? WHERE id = ?",
                (identity.external, json.dumps(identity.metadata, sort_keys=True), now, identity.row_id),
            )
        else:
            conn.execute(
                "INSERT INTO identities(id, external_id, created_at, updated_at, metadata) VALUES (?, ?, ?, ?, ?)",
                (identity.row_id, identity.external, identity.created_at, now, json.dumps(identity.metadata)),
            )
        for sample, vector in zip(identity.samples, unit):
            sample_id = conn.add_sample(identity.row_id, vector, binding, now)
            conn.add_media(identity.row_id, sample.media, now, sample_id)
            if sample.track_id is not None:
                conn.execute("DELETE FROM tracks WHERE track_id = ?", (sample.track_id,))  # moved in the source
                conn.execute(
                    "INSERT INTO tracks(track_id, identity_id, sample_id, updated_at) VALUES (?, ?, ?, ?)",
                    (sample.track_id, identity.row_id, sample_id, now),
                )
        conn.put_template(identity.row_id, template, binding, len(unit))
        conn.forget_kept(identity.external)
        sequence = conn.log_change("upsert", identity.row_id, now)
        conn.audit(now, "reembed", identity.external, actor, {"samples": len(unit), "model": str(binding)})
        return Write(None, sequence, [(identity.row_id, template)], deletes)

    target.commit(change, while_retired=True)


def remove(target: Gallery, row_id: int, *, keep_as: tuple[str, ModelBinding] | None = None, actor: str) -> None:
    """Take the row out of ``target`` (gone from the source, or not re-embeddable). With
    ``keep_as=(external id, old binding)`` a kept-on-old record says where the identity stayed."""

    def change(conn: SqlRows) -> Write[None]:
        now, deletes = st.now(), []
        found = conn.execute("SELECT external_id FROM identities WHERE id = ?", (row_id,)).fetchone()
        if found is not None:
            conn.delete_identity(row_id)
            conn.audit(now, "reembed-drop", str(found[0]), actor, {"kept_on_old": keep_as is not None})
            deletes.append(row_id)
        conn.execute("DELETE FROM kept_on_old WHERE identity_id = ?", (row_id,))
        if keep_as is not None:
            conn.keep_on_old(keep_as[0], row_id, keep_as[1], now)
        sequence = conn.log_change("delete", row_id, now) if deletes else conn.max_sequence()
        return Write(None, sequence, deletes=deletes)

    target.commit(change, while_retired=True)


def sync_floor(source: Gallery, target: Gallery) -> None:
    """Row ids the target hands out stay above every id the source ever used (and vice versa,
    on rollback), so an id names one identity's life across generations."""
    with source.reader() as conn:
        floor = conn.id_floor()

    def change(conn: SqlRows) -> Write[None]:
        conn.raise_id_floor(floor)
        return Write(None, conn.max_sequence())

    target.commit(change, while_retired=True)


def copy_audit(source: Gallery, target: Gallery, after: int) -> int:
    """Append the source's audit rows after row ``after`` to the target's log (the history travels
    with the identities); returns the last source row copied."""
    with source.reader() as conn:
        rows = conn.execute(
            "SELECT id, at, action, identity, actor, detail FROM audit WHERE id > ? ORDER BY id", (after,)
        ).fetchall()
    if not rows:
        return after

    def change(conn: SqlRows) -> Write[None]:
        conn.executemany(
            "INSERT INTO audit(at, action, identity, actor, detail) VALUES (?, ?, ?, ?, ?)", [r[1:] for r in rows]
        )
        return Write(None, conn.max_sequence())

    target.commit(change, while_retired=True)
    return int(rows[-1][0])


def first_audit_at(gallery: Gallery, at: float) -> int:
    """The first audit row id written at or after ``at`` (one past the last if none)."""
    with gallery.reader() as conn:
        row = conn.execute("SELECT MIN(id) FROM audit WHERE at >= ?", (at,)).fetchone()
        if row[0] is not None:
            return int(row[0])
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()[0]) + 1


def samples_of(gallery: Gallery, row_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Stored unit samples [n, D] of each row (for the report's score distributions)."""
    out = {}
    with gallery.reader() as conn:
        for row_id in row_ids:
            vectors = conn.samples(row_id, gallery.dim)
            if len(vectors):
                out[row_id] = vectors
    return out
