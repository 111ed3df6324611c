"""The re-embedding pass of an activation or rollback: identities of the source gallery re-embedded
with the target modality's model into the target gallery, then the changes made meanwhile.

Order (so that no enrollment or delete that arrives during the re-embed is lost):

1. :meth:`Copier.rows` of :func:`serving.gallery.reembed.position` — every identity at one
   change-log sequence — re-embedded in chunks of about ``MEDIA_BATCH`` media, on one thread;
2. catch-up passes over ``changes`` after the last position, until a pass is small;
3. the final delta, which the caller runs with the source's writes paused (then it swaps).

The copy runs on one low-priority thread (nice +10 where the OS allows) with a pause after each
chunk (``yield_ratio`` × the chunk's time) that live traffic overlapped, so live requests keep
their latency. With ``traffic`` (the gateway's :class:`~serving.metrics.LiveTraffic`), a chunk
during which no data-plane request started or ran is followed by no pause: with no one to give
way to, the pause would only slow the re-embed by ``yield_ratio`` (bench/bench_activation.py).
Without it every chunk is followed by one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from contracts.card import FaceCard
from serving.errors import Cancelled, FailedPrecondition, ToitsuError
from serving.gallery import ModelBinding
from serving.gallery import reembed as rx
from serving.metrics import LiveTraffic
from serving.modality import MEDIA_BATCH, AudioModality, FaceModality

log = logging.getLogger("toitsu.activation")

Modality = AudioModality | FaceModality
Policy = Literal["refuse", "drop", "keep-old"]
POLICIES: tuple[str, ...] = ("refuse", "drop", "keep-old")
T = TypeVar("T")


@dataclass(frozen=True)
class ActivationProgress:
    """One progress event. ``phase``: "loading", "re-embedding", "catching-up", "final-delta"
    (writes paused), "committing", "switched" (ACTIVE written), "report", "done"."""

    modality: str
    phase: str
    done: int = 0
    total: int = 0
    message: str = ""


class MissingMedia(FailedPrecondition):
    """Identities that cannot be re-embedded under the ``refuse`` policy; ``identities`` maps
    each to why (no stored media, media the new model refuses)."""

    def __init__(self, message: str, identities: dict[str, str]) -> None:
        super().__init__(message)
        self.identities = identities


def missing_message(modality: str, target: ModelBinding, identities: dict[str, str]) -> str:
    shown = ", ".join(f"{k!r} ({v})" for k, v in sorted(identities.items())[:20])
    more = f" and {len(identities) - 20} more" if len(identities) > 20 else ""
    return (
        f"{len(identities)} {modality} identities cannot be re-embedded for {target}: {shown}{more}; "
        "activate with policy 'drop' to leave them out, or 'keep-old' to keep them on the old version"
    )


@dataclass
class Tally:
    """What a copy did, for the report."""

    reembedded: int = 0
    samples: int = 0
    removed: int = 0
    changes: int = 0  # rows replayed from the change log after the start position
    skipped: dict[str, str] = field(default_factory=dict)  # identity → why it could not be re-embedded
    yielded_seconds: float = 0.0  # paused after chunks, giving way to live traffic


class Copier:
    """Copies rows from ``source`` into ``target`` (both loaded modalities)."""

    def __init__(
        self,
        modality: str,
        source: Modality,
        target: Modality,
        policy: Policy,
        progress: Callable[[ActivationProgress], None],
        cancelled: Callable[[], bool],
        *,
        actor: str = "activation",
        yield_ratio: float = 0.25,
        traffic: LiveTraffic | None = None,
    ) -> None:
        self.modality, self.source, self.target, self.policy = modality, source, target, policy
        self.progress, self.cancelled, self.actor, self.yield_ratio = progress, cancelled, actor, yield_ratio
        self.traffic = traffic
        self.tally = Tally()
        self.audit_after = 0
        source_card = source.card
        self._chips_from = source_card.image.alignment if isinstance(source_card, FaceCard) else None

    def rows(self, rows: Sequence[int], phase: str, *, pause: bool = True) -> None:
        """Bring each row of the target to the source's current state of it."""
        done, i = 0, 0
        while i < len(rows):
            if self.cancelled():
                raise Cancelled(f"the {self.modality} activation was cancelled; the active gallery is unchanged")
            started, mark = time.monotonic(), self.traffic.mark() if self.traffic is not None else 0
            chunk: list[tuple[int, rx.StoredIdentity | None]] = []
            media = 0
            while i < len(rows) and (not chunk or media < MEDIA_BATCH):
                identity = rx.read(self.source.gallery, rows[i])
                chunk.append((rows[i], identity))
                media += sum(len(s.media) for s in identity.samples) if identity else 0
                i += 1
            self._chunk(chunk)
            done += len(chunk)
            self.progress(ActivationProgress(self.modality, phase, done, len(rows)))
            if pause and self.yield_ratio > 0 and (self.traffic is None or self.traffic.since(mark)):
                wait = self.yield_ratio * (time.monotonic() - started)
                time.sleep(wait)
                self.tally.yielded_seconds += wait
        self.audit_after = rx.copy_audit(self.source.gallery, self.target.gallery, self.audit_after)

    def catch_up(self, since: int, *, small: int = 8, passes: int = 5) -> int:
        """Replay changes after ``since`` until a pass is small; the position reached."""
        for _ in range(passes):
            sequence, changed = rx.changes(self.source.gallery, since)
            if not changed:
                return sequence
            self.tally.changes += len(changed)
            self.rows(changed, "catching-up")
            since = sequence
            if len(changed) <= small:
                break
        return since

    def final_delta(self, since: int) -> int:
        """The last changes (the caller holds the source's writes paused); the final position."""
        sequence, changed = rx.changes(self.source.gallery, since)
        self.tally.changes += len(changed)
        self.rows(changed, "final-delta", pause=False)
        rx.sync_floor(self.source.gallery, self.target.gallery)
        return sequence

    def _chunk(self, chunk: list[tuple[int, rx.StoredIdentity | None]]) -> None:
        ready = [(row, ident) for row, ident in chunk if ident is not None and not ident.problem]
        vectors = self._embed_together([ident for _, ident in ready])
        for row, identity in chunk:
            if identity is None:
                rx.remove(self.target.gallery, row, actor=self.actor)
                self.tally.removed += 1
                continue
            found = vectors.get(identity.row_id)
            if identity.problem or not isinstance(found, np.ndarray):
                self._skip(identity, identity.problem or str(found))
            else:
                rx.write(self.target.gallery, identity, found, actor=self.actor)
                self.tally.reembedded += 1
                self.tally.samples += len(identity.samples)
                self.tally.skipped.pop(identity.external, None)

    def _embed_together(self, identities: list[rx.StoredIdentity]) -> dict[int, np.ndarray | str]:
        """Each identity's sample vectors [n_samples, D] (mean of a sample's media embeddings), one
        backend batch for the chunk; an identity whose media the model refuses maps to the reason."""
        if not identities:
            return {}
        try:
            flat = self._embed([m for ident in identities for s in ident.samples for m in s.media])
        except ToitsuError:
            if len(identities) == 1:
                return {identities[0].row_id: self._reason(identities[0])}
            out: dict[int, np.ndarray | str] = {}
            for ident in identities:  # find the one whose media fails
                out.update(self._embed_together([ident]))
            return out
        out, k = {}, 0
        for ident in identities:
            rows = []
            for sample in ident.samples:
                rows.append(flat[k : k + len(sample.media)].mean(axis=0))
                k += len(sample.media)
            out[ident.row_id] = np.stack(rows)
        return out

    def _reason(self, identity: rx.StoredIdentity) -> str:
        try:
            self._embed([m for s in identity.samples for m in s.media])
        except ToitsuError as exc:
            return f"the new model refuses its stored media: {exc.message}"
        return "its stored media could not be re-embedded"

    def _embed(self, media: list) -> np.ndarray:
        if isinstance(self.target, FaceModality):
            return self.target.embed_media(media, chips_from=self._chips_from)
        return self.target.embed_media(media)

    def _skip(self, identity: rx.StoredIdentity, reason: str) -> None:
        if self.policy == "refuse":
            found = {identity.external: reason}
            raise MissingMedia(missing_message(self.modality, self.target.binding, found), found)
        keep = (identity.external, self.source.gallery.binding) if self.policy == "keep-old" else None
        rx.remove(self.target.gallery, identity.row_id, keep_as=keep, actor=self.actor)
        self.tally.skipped[identity.external] = reason


def low_priority(name: str, work: Callable[[], T]) -> T:
    """Run ``work`` on a fresh thread at nice +10 (Linux: per thread; elsewhere best effort) and
    return its result or raise its exception here. The calling thread keeps its priority."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (OSError, AttributeError):
            pass
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
