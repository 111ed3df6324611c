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
from collections.abc import Mapping, Sequence

import numpy as np

from serving.errors import Overloaded
from serving.gallery import store as st
from serving.gallery import validate
from serving.gallery.gallery import Gallery
from serving.gallery.rows import SqlRows
from serving.gallery.types import Media, ModelBinding, TrackEnrollResult
from serving.gallery.writes import Write


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
            found = conn.find_track(track)
            return conn.external_id(found[0]) if found else None

    def _rows(
        self,
        conn: SqlRows,
        external: str,
        track: str,
        unit: np.ndarray,
        items: list[Media],
        meta: dict[str, str] | None,
        actor: str,
    ) -> Write[TrackEnrollResult]:
        g, now = self.gallery, st.now()
        previous = conn.find_track(track)
        found = conn.find_identity(external)
        moved_from: str | None = None
        upserts: list[tuple[int, np.ndarray]] = []
        deletes: list[int] = []
        if previous is not None:
            moved_from, upserts, deletes = self._release(conn, *previous, None if found is None else found[0], now)
        if found is None:
            conn.forget_kept(external)
            row_id = conn.insert_identity(external, now, meta)
        else:
            row_id = found[0]
            conn.touch_identity(row_id, now, {**json.loads(found[1]), **meta} if meta else None)
        sample_id = conn.add_sample(row_id, unit, g.binding, now)
        conn.add_track(track, row_id, sample_id, now)
        conn.add_media(row_id, items, now, sample_id)  # the chips this track's sample averages
        samples = conn.samples(row_id, g.dim)
        if len(samples) > g.config.max_samples:
            raise Overloaded(f"{external!r} would have {len(samples)} samples; the limit is {g.config.max_samples}")
        vector = validate.template(samples)
        conn.put_template(row_id, vector, g.binding, len(samples))
        sequence = conn.log_change("upsert", row_id, now)
        upserts.append((row_id, vector))
        conn.audit(
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
        self, conn: SqlRows, old_row: int, old_sample: int, new_row: int | None, now: float
    ) -> tuple[str | None, list[tuple[int, np.ndarray]], list[int]]:
        """Drop a track's previous sample; when the track changes identity, re-average (or delete,
        if it has no sample left) the one it leaves. Returns (moved_from, upserts, deletes)."""
        g = self.gallery
        conn.drop_track_of(old_sample)
        conn.remove_sample(old_sample)
        if old_row == new_row:
            return None, [], []  # the same identity: its template is rebuilt with the new sample
        moved_from = conn.external_id(old_row)
        rest = conn.samples(old_row, g.dim)
        if len(rest) == 0:
            conn.delete_identity(old_row)
            conn.log_change("delete", old_row, now)
            return moved_from, [], [old_row]
        vector = validate.template(rest)
        conn.put_template(old_row, vector, g.binding, len(rest))
        conn.log_change("upsert", old_row, now)
        return moved_from, [(old_row, vector)], []
