"""Face-track samples (``FaceService.EnrollTracks``), kept beside a gallery: a track id owns
exactly one sample of one identity.

The :class:`~serving.gallery.Gallery` is modality-neutral: identities, samples, templates. A face
track adds one rule on top, and this ledger keeps it in the store's ``tracks`` table: sending a
track again replaces its sample instead of adding one, and a track sent under another identity
moves there (an identity left with no sample is deleted). Each enrollment is one store
transaction run by :meth:`Gallery.commit`, so it is exactly as crash-safe as any other write:
committed whole, or not at all, and replayed into the index after a crash.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

import numpy as np

from serving.errors import Overloaded
from serving.gallery import store as st
from serving.gallery import validate
from serving.gallery.gallery import Gallery, Write
from serving.gallery.types import Media, ModelBinding, TrackEnrollResult


class TrackLedger:
    """The track records of one open gallery. Holds no state of its own: the store is the truth."""

    def __init__(self, gallery: Gallery) -> None:
        self.gallery = gallery

    def enroll(
        self,
        identity: str,
        track_id: str,
        embedding: np.ndarray,
        *,
        model: ModelBinding,
        media: Sequence[Media] = (),
        metadata: Mapping[str, str] | None = None,
        actor: str = "",
    ) -> TrackEnrollResult:
        """Commit one track's template ``embedding`` [dim] as the sample owned by ``track_id``.

        Idempotent by track id: the track's previous sample (if any) is removed in the same
        transaction, so sending a track again replaces it and never adds a second sample. A track
        sent again under another identity moves there; an identity left with no sample is deleted.
        The identity is created when new; its template is re-averaged over all its samples.
        """
        g = self.gallery
        external, track = validate.identity(identity), validate.identity(track_id)
        validate.binding(g.binding, model, g.modality)
        (unit,) = validate.embeddings(np.asarray(embedding)[None, :], g.dim, 1)
        items = validate.media(media, g.config.max_media_bytes)
        meta = validate.metadata(metadata, g.config.max_metadata_bytes)
        return g.commit(lambda conn: self._rows(conn, external, track, unit, items, meta, validate.actor(actor)))

    def owner(self, track_id: str) -> str | None:
        """The identity a track id is enrolled under, or None."""
        track = validate.identity(track_id)
        with self.gallery.reader() as conn:
            found = _find(conn, track)
            return st.external_id(conn, found[0]) if found else None

    def _rows(
        self,
        conn: sqlite3.Connection,
        external: str,
        track: str,
        unit: np.ndarray,
        items: list[Media],
        meta: dict[str, str] | None,
        actor: str,
    ) -> Write[TrackEnrollResult]:
        g, now = self.gallery, st.now()
        previous = _find(conn, track)
        found = st.find_identity(conn, external)
        moved_from: str | None = None
        upserts: list[tuple[int, np.ndarray]] = []
        deletes: list[int] = []
        if previous is not None:
            moved_from, upserts, deletes = self._release(conn, *previous, None if found is None else found[0], now)
        if found is None:
            st.forget_kept(conn, external)
            row_id = st.insert_identity(conn, external, now, meta)
        else:
            row_id = found[0]
            st.touch_identity(conn, row_id, now, {**json.loads(found[1]), **meta} if meta else None)
        sample_id = st.add_sample(conn, row_id, unit, g.binding, now)
        conn.execute(
            "INSERT INTO tracks(track_id, identity_id, sample_id, updated_at) VALUES (?, ?, ?, ?)",
            (track, row_id, sample_id, now),
        )
        st.add_media(conn, row_id, items, now, sample_id)  # the chips this track's sample averages
        samples = st.samples(conn, row_id, g.dim)
        if len(samples) > g.config.max_samples:
            raise Overloaded(f"{external!r} would have {len(samples)} samples; the limit is {g.config.max_samples}")
        vector = validate.template(samples)
        st.put_template(conn, row_id, vector, g.binding, len(samples))
        sequence = st.log_change(conn, "upsert", row_id, now)
        upserts.append((row_id, vector))
        st.audit(
            conn,
            now,
            "enroll_track",
            external,
            actor,
            {
                "track": track,
                "replaced": previous is not None,
                "moved_from": moved_from,
                "samples": len(samples),
                "media": len(items),
                "model": str(g.binding),
            },
        )
        result = TrackEnrollResult(external, len(samples), sequence, found is None, previous is not None, moved_from)
        return Write(result, sequence, upserts, deletes)

    def _release(
        self, conn: sqlite3.Connection, old_row: int, old_sample: int, new_row: int | None, now: float
    ) -> tuple[str | None, list[tuple[int, np.ndarray]], list[int]]:
        """Drop a track's previous sample; when the track changes identity, re-average (or delete,
        if it has no sample left) the one it leaves. Returns (moved_from, upserts, deletes)."""
        g = self.gallery
        conn.execute("DELETE FROM tracks WHERE sample_id = ?", (old_sample,))
        st.remove_sample(conn, old_sample)
        if old_row == new_row:
            return None, [], []  # the same identity: its template is rebuilt with the new sample
        moved_from = st.external_id(conn, old_row)
        rest = st.samples(conn, old_row, g.dim)
        if len(rest) == 0:
            st.delete_identity(conn, old_row)
            st.log_change(conn, "delete", old_row, now)
            return moved_from, [], [old_row]
        vector = validate.template(rest)
        st.put_template(conn, old_row, vector, g.binding, len(rest))
        st.log_change(conn, "upsert", old_row, now)
        return moved_from, [(old_row, vector)], []


def _find(conn: sqlite3.Connection, track_id: str) -> tuple[int, int] | None:
    """(identity row id, sample row id) of an enrolled track, or None."""
    row = conn.execute("SELECT identity_id, sample_id FROM tracks WHERE track_id = ?", (track_id,)).fetchone()
    return (int(row[0]), int(row[1])) if row else None
