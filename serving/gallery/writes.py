"""The rows each gallery write changes, inside the store transaction that
:meth:`Gallery.commit <serving.gallery.gallery.Gallery.commit>` runs: what an enrollment, a bulk
CREATE and a delete do to the tables, and the index changes they hand back (:class:`Write`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from serving.errors import AlreadyExists, InvalidInput, NotFound, NotOnThisVersion, Overloaded
from serving.gallery import validate
from serving.gallery.rows import SqlRows, now
from serving.gallery.types import EnrollMode, EnrollResult, Media, ModelBinding

R = TypeVar("R")


@dataclass(frozen=True)
class Write(Generic[R]):
    """What one store transaction did: the caller's result, its change-log sequence number, and the
    index rows it changed (``upserts`` of (row id, template), ``deletes`` of row ids)."""

    result: R
    sequence: int
    upserts: list[tuple[int, np.ndarray]] = field(default_factory=list)
    deletes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Shape:
    """What a write needs to know of its gallery."""

    modality: str
    dim: int
    binding: ModelBinding
    max_samples: int


def enroll_rows(
    conn: SqlRows,
    g: Shape,
    external: str,
    unit: np.ndarray,
    mode: EnrollMode,
    items: list[Media],
    meta: dict[str, str] | None,
    actor: str,
) -> Write[EnrollResult]:
    """One enrollment (:meth:`Gallery.enroll`): samples, media, the re-averaged template, change log, audit."""
    at = now()
    found = conn.find_identity(external)
    if mode is EnrollMode.CREATE and found:
        raise AlreadyExists(f"{g.modality} {external!r} is already enrolled; use APPEND or REPLACE")
    if mode is not EnrollMode.CREATE and not found:
        raise missing(conn, g, external, f"; {mode.name} needs an existing identity")
    if mode is EnrollMode.CREATE:
        conn.forget_kept(external)  # enrolled again under this gallery's model
        row_id, samples = conn.insert_identity(external, at, meta), unit
    else:
        assert found is not None  # checked above
        row_id = found[0]
        if mode is EnrollMode.APPEND:
            samples = np.concatenate([conn.samples(row_id, g.dim), unit])
            meta = {**json.loads(found[1]), **meta} if meta else None
        else:
            conn.clear_enrollment(row_id)
            samples = unit
        conn.touch_identity(row_id, at, meta)
    if len(samples) > g.max_samples:
        raise Overloaded(f"{external!r} would have {len(samples)} samples; the limit is {g.max_samples}")
    vector = validate.template(samples)
    sample_ids = conn.add_samples(row_id, unit, g.binding, at)
    if len(items) == len(sample_ids):  # one clip or image per sample: each linked to the sample it made
        for sample_id, item in zip(sample_ids, items):
            conn.add_media(row_id, [item], at, sample_id)
    else:
        conn.add_media(row_id, items, at)
    conn.put_template(row_id, vector, g.binding, len(samples))
    sequence = conn.log_change("upsert", row_id, at)
    detail: dict[str, object] = {
        "mode": mode.value,
        "samples_added": len(unit),
        "samples": len(samples),
        "media": len(items),
        "model": str(g.binding),
    }
    conn.audit(at, "enroll", external, actor, detail)
    result = EnrollResult(external, len(samples), sequence, mode is EnrollMode.CREATE)
    return Write(result, sequence, [(row_id, vector)])


def batches(
    items: Iterable[tuple[str, np.ndarray]], dim: int, max_samples: int, size: int
) -> Iterator[list[tuple[str, np.ndarray, np.ndarray]]]:
    """:meth:`Gallery.enroll_many`'s input checked and cut into batches of (identity, unit samples,
    template); InvalidInput when an identity appears twice in one batch."""
    batch: list[tuple[str, np.ndarray, np.ndarray]] = []
    for identity, embeddings in items:
        unit = validate.embeddings(embeddings, dim, max_samples)
        batch.append((validate.identity(identity), unit, validate.template(unit)))
        if len(batch) == size:
            yield _distinct(batch)
            batch = []
    if batch:
        yield _distinct(batch)


def _distinct(batch: list[tuple[str, np.ndarray, np.ndarray]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if len({name for name, _, _ in batch}) != len(batch):
        raise InvalidInput("an identity appears twice in one enroll_many batch")
    return batch


def create_rows(
    conn: SqlRows, batch: Sequence[tuple[str, np.ndarray, np.ndarray]], binding: ModelBinding, actor: str
) -> Write[int]:
    """One batch of :meth:`Gallery.enroll_many`: all new, or AlreadyExists and nothing written."""
    taken = conn.existing([name for name, _, _ in batch])
    if taken:
        raise AlreadyExists(f"{len(taken)} identities are already enrolled, e.g. {sorted(taken)[0]!r}")
    sequence, rows = conn.bulk_create(batch, binding, now(), actor)
    return Write(len(batch), sequence, [(rows[name], vector) for name, _, vector in batch])


def delete_rows(conn: SqlRows, modality: str, external: str, actor: str) -> Write[None]:
    """An identity's rows gone (:meth:`Gallery.delete`), or its kept-on-old record; NotFound when neither."""
    found = conn.find_identity(external)
    if not found:
        if conn.forget_kept(external):  # only a record that it stayed on an old version
            conn.audit(now(), "delete", external, actor, {"kept_on_old": True})
            return Write(None, conn.max_sequence())
        raise NotFound(f"{modality} {external!r} is not enrolled")
    counts = conn.enrollment_counts(external)
    conn.delete_identity(found[0])
    at = now()
    sequence = conn.log_change("delete", found[0], at)
    conn.audit(at, "delete", external, actor, {"samples": counts["samples"], "media": counts["media"]})
    return Write(None, sequence, deletes=[found[0]])


def missing(conn: SqlRows, g: Shape, external: str, detail: str = "") -> NotFound:
    """The error for an identity this gallery has no template of: NotOnThisVersion
    (FAILED_PRECONDITION) when an activation kept it on the previous model version, else NotFound."""
    old = conn.kept_on_old(external)
    if old is not None:
        return NotOnThisVersion(
            f"{g.modality} {external!r} is enrolled under {old} only, not under {g.binding}: it had no "
            f"stored media to re-embed when {g.binding} was activated; enroll it again, or roll back to {old}"
        )
    return NotFound(f"{g.modality} {external!r} is not enrolled{detail}")
