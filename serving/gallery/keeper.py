"""The derived index's life: load a snapshot and replay the change log (or rebuild from the store),
apply committed changes, snapshot, rebuild when the size calls for another kind, and check it
against the store.

Locking. ``writing()`` (a mutex) is held by every writer from its store commit to its index
update, so the index applies changes in sequence order and ``sequence`` always names the last
applied one; snapshots and rebuild swaps take it too. Index mutations additionally take the
exclusive side of a readers-writer lock whose shared side every search holds, so a search never
sees a half-applied change. Snapshots and rebuilds do their slow work (file I/O, training)
without the exclusive lock, in a background worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from serving.gallery import index as ix
from serving.gallery import snapshot as snap
from serving.gallery.locking import RWLock
from serving.gallery.rows import SqlRows
from serving.gallery.store import GalleryStore
from serving.gallery.types import ConsistencyReport, GalleryConfig, IndexInfo, ModelBinding

log = logging.getLogger(__name__)
_SHOWN = 10  # ids listed in a consistency report


class IndexKeeper:
    def __init__(
        self, folder: Path, store: GalleryStore, dim: int, binding: ModelBinding, store_uuid: str, config: GalleryConfig
    ) -> None:
        self._folder, self._store, self._dim = folder, store, dim
        self._binding, self._uuid, self._config = binding, store_uuid, config
        self._index: ix.Index = ix.FlatIndex(dim)
        self._sequence = 0
        self._rw = RWLock()
        self._mutex = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()  # one rebuild at a time (worker or an explicit call)
        self._since_snapshot = 0
        self._generation = 0  # bumped whenever another index object is swapped in
        self._snapshotted: tuple[int, int] | None = None  # (generation, sequence) last written or loaded
        self._stale = False  # an index update failed after its commit: rebuild from the store
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._busy = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.loaded_from = ""
        self.last_error: str | None = None

    # --- loading --------------------------------------------------------------------------------

    def load(self) -> None:
        """Snapshot + replay, or a rebuild from the store when the snapshot does not check out."""
        self._folder.mkdir(parents=True, exist_ok=True)
        try:
            self._load_snapshot()
            self.loaded_from = f"snapshot + {self._since_snapshot} replayed changes"
        except snap.SnapshotError as exc:
            level = logging.INFO if str(exc) == snap.MISSING else logging.WARNING
            log.log(level, "gallery index %s: %s; rebuilding from the store", self._folder, exc)
            self._rebuild_from_store()
            self.loaded_from = f"store ({exc})"
            self._request({"snapshot"})
        if ix.needs_rebuild(self._index, self._config):
            self._request({"rebuild"})

    def _load_snapshot(self) -> None:
        manifest, sections = snap.read(self._folder)
        model = manifest.get("model") or {}
        binding = (model.get("name"), model.get("version"))
        if manifest.get("dim") != self._dim or binding != (self._binding.name, self._binding.version):
            raise snap.SnapshotError(f"snapshot is for dim {manifest.get('dim')} / model {model}, not this gallery")
        if manifest.get("store_uuid") != self._uuid:
            raise snap.SnapshotError("snapshot belongs to another store")
        with self._store.read_snapshot() as conn:
            since = int(manifest["sequence"])
            if since > conn.max_sequence():
                raise snap.SnapshotError(f"snapshot (sequence {since}) is ahead of the store")
            try:
                index = ix.from_state(manifest["kind"], self._dim, manifest.get("params") or {}, sections)
            except Exception as exc:  # FAISS raises RuntimeError on a malformed blob; any failure → rebuild
                raise snap.SnapshotError(f"snapshot does not load: {exc}") from None
            self._index, self._sequence = index, self._replay(index, conn, since)
            self._generation += 1
        self._since_snapshot = self._sequence - since
        if self._sequence == since:
            self._snapshotted = (self._generation, since)

    def _replay(self, index: ix.Index, conn: SqlRows, since: int) -> int:
        """Bring ``index`` from change ``since`` to the store's state; returns the store's sequence."""
        sequence = conn.max_sequence()
        if sequence > since:
            changed = conn.changed_since(since)
            present, vectors = conn.templates_for(changed, self._dim)
            index.remove(np.setdiff1d(np.asarray(changed, np.int64), present))
            index.upsert(present, vectors)
        return sequence

    def _rebuild_from_store(self) -> None:
        index, sequence = self._build_from_store()
        with self._rw.write():
            self._index, self._sequence, self._stale = index, sequence, False
            self._generation += 1
        self._since_snapshot = sequence

    def _build_from_store(self) -> tuple[ix.Index, int]:
        """A new index of every template in the store, and the sequence it reflects."""
        with self._store.read_snapshot() as conn:
            sequence = conn.max_sequence()
            n = conn.count()
            ids, vectors = np.zeros(n, np.int64), np.zeros((n, self._dim), np.float32)
            filled = 0
            for chunk_ids, chunk in conn.all_templates(self._dim):
                ids[filled : filled + len(chunk_ids)], vectors[filled : filled + len(chunk_ids)] = chunk_ids, chunk
                filled += len(chunk_ids)
        current = self._index.kind
        return ix.build(ix.choose_kind(n, current, self._config), self._dim, ids, vectors, self._config), sequence

    # --- reads and writes -----------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[ix.Index]:
        with self._rw.read():
            yield self._index

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._mutex:
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No writer and no reader inside (for closing)."""
        with self._mutex, self._rw.write():
            yield

    def apply(self, sequence: int, upsert_ids: np.ndarray, upsert_vectors: np.ndarray, remove_ids: np.ndarray) -> None:
        """Apply committed changes up to ``sequence`` (caller holds ``writing()``)."""
        changes = len(upsert_ids) + len(remove_ids)
        try:
            with self._rw.write():
                self._index.remove(remove_ids)
                self._index.upsert(upsert_ids, upsert_vectors)
                self._sequence = sequence
        except Exception:
            # The store has committed; never fail the caller for the derived copy. Rebuild it.
            log.exception(
                "gallery index %s: applying change %d failed; rebuilding from the store", self._folder, sequence
            )
            self._stale = True
        self._since_snapshot += changes

    def catch_up(self) -> int:
        """Apply the changes committed to the store after the last one applied, whoever wrote them
        (a store shared by replicas, serving.gallery.follow); caller holds ``writing()``. Returns
        how many identities changed."""
        with self._store.read_snapshot() as conn:
            sequence = conn.max_sequence()
            if sequence <= self._sequence:
                return 0
            changed = conn.changed_since(self._sequence)
            present, vectors = conn.templates_for(changed, self._dim)
        self.apply(sequence, present, vectors, np.setdiff1d(np.asarray(changed, np.int64), present))
        return len(changed)

    def after_write(self, deleted: bool = False) -> None:
        """Schedule maintenance that the last write calls for (call without holding ``writing()``)."""
        tasks = set()
        due = max(self._config.snapshot_every, self._config.snapshot_fraction * self._index.size)
        if self._since_snapshot >= due or (deleted and self._config.snapshot_after_delete):
            tasks.add("snapshot")
        if self._stale or ix.needs_rebuild(self._index, self._config):
            tasks.add("rebuild")
        self._request(tasks)

    @property
    def sequence(self) -> int:
        return self._sequence

    def info(self) -> IndexInfo:
        with self._rw.read():
            return IndexInfo(
                self._index.kind,
                self._index.size,
                self._sequence,
                self._index.params(),
                self.loaded_from,
                self.last_error,
            )

    # --- snapshots and rebuilds -----------------------------------------------------------------

    def snapshot(self) -> None:
        """Write the index as of the last applied change (blocks writers only while copying)."""
        with self._snapshot_lock:
            with self._mutex:
                if self._stale:
                    return  # never persist an index known to disagree with the store
                index, sequence, since = self._index, self._sequence, self._since_snapshot
                generation = self._generation
                if self._snapshotted == (generation, sequence):
                    return  # the snapshot on disk is this very index at this very sequence
                params, sections = index.state()
                self._since_snapshot = 0
            manifest = {
                "sequence": sequence,
                "kind": index.kind,
                "dim": self._dim,
                "count": index.size,
                "model": {"name": self._binding.name, "version": self._binding.version},
                "store_uuid": self._uuid,
                "params": params,
                "created_at": time.time(),
            }
            # A pq-rerank index keeps a deleted identity's vector in its dead slot (id -1) until compaction.
            dead = {"vectors": np.flatnonzero(sections["ids"] < 0)} if {"ids", "vectors"} <= sections.keys() else None
            try:
                snap.write(self._folder, manifest, sections, blank=dead)
            except BaseException:
                self._since_snapshot += since
                raise
            self._snapshotted = (generation, sequence)

    def forget_snapshot(self) -> None:
        """Remove the snapshot on disk now (it may hold a template just deleted from the store); the
        next snapshot (``gallery.snapshot_after_delete`` asks for one at once) writes the current index.

        Taken under the snapshot lock, so a snapshot being written (maybe of the index before the
        delete) finishes first and is removed too; one started later already lacks the deleted rows.
        Call without holding ``writing()`` (a snapshot takes it inside the snapshot lock)."""
        with self._snapshot_lock:
            snap.discard(self._folder)
            self._snapshotted = None

    def rebuild(self, from_store: bool = False) -> None:
        """Rebuild the index in the kind its size calls for, swap it in, snapshot.

        From a copy of the current index's vectors (a kind change, compaction, re-tuning), or
        from the store (``from_store``, or after an index update failed): the repair path.
        The build runs without locks; changes committed meanwhile are replayed before the swap.
        """
        with self._rebuild_lock:
            started = time.perf_counter()
            if from_store or self._stale:
                fresh, since = self._build_from_store()
            else:
                with self._mutex:
                    ids, vectors = self._index.ids_and_vectors()
                    since, current = self._sequence, self._index.kind
                fresh = ix.build(ix.choose_kind(len(ids), current, self._config), self._dim, ids, vectors, self._config)
                del ids, vectors
            with self._mutex:
                with self._store.read_snapshot() as conn:
                    sequence = self._replay(fresh, conn, since)
                with self._rw.write():
                    self._index, self._sequence, self._stale = fresh, sequence, False
                    self._generation += 1
            log.info(
                "gallery index %s: rebuilt as %s (%d vectors) in %.1f s",
                self._folder,
                fresh.kind,
                fresh.size,
                time.perf_counter() - started,
            )
        self.snapshot()

    # --- background worker ----------------------------------------------------------------------

    def _request(self, tasks: set[str]) -> None:
        if not tasks:
            return
        if not self._config.background:
            self._run(tasks)
            return
        with self._cond:
            if self._stopped:
                return
            self._pending |= tasks
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"gallery-{self._folder.parent.name}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                tasks, self._pending, self._busy = self._pending, set(), True
            try:
                self._run(tasks)
                self.last_error = None
            except Exception as exc:  # keep serving; the next write or close retries
                log.exception("gallery index %s: maintenance failed", self._folder)
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _run(self, tasks: set[str]) -> None:
        if "rebuild" in tasks and (self._stale or ix.needs_rebuild(self._index, self._config)):
            self.rebuild()
        elif "snapshot" in tasks or "rebuild" in tasks:
            self.snapshot()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no maintenance is pending or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self) -> None:
        """Stop the worker (a running task finishes first)."""
        with self._cond:
            self._stopped = True
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    # --- checking -------------------------------------------------------------------------------

    def verify(self) -> ConsistencyReport:
        """Compare every index vector with the store's template (writes wait; searches go on)."""
        with self._mutex, self._store.read_snapshot() as conn:
            ids, vectors = self._index.ids_and_vectors()
            order = np.argsort(ids)
            ids, kind, index_sequence = ids[order], self._index.kind, self._sequence
            seen = np.zeros(len(ids), bool)
            missing, mismatched, store_count = [], [], 0
            for chunk_ids, chunk in conn.all_templates(self._dim):
                store_count += len(chunk_ids)
                loc = np.minimum(np.searchsorted(ids, chunk_ids), max(len(ids) - 1, 0))
                found = (ids[loc] == chunk_ids) if len(ids) else np.zeros(len(chunk_ids), bool)
                seen[loc[found]] = True
                missing.extend(chunk_ids[~found][:_SHOWN].tolist())
                diff = np.abs(vectors[order[loc[found]]] - chunk[found]).max(axis=1) if found.any() else np.zeros(0)
                mismatched.extend(chunk_ids[found][diff > 1e-6][:_SHOWN].tolist())
            names = conn.external_ids(missing[:_SHOWN] + mismatched[:_SHOWN])
            return ConsistencyReport(
                store_count=store_count,
                index_count=len(ids),
                missing_from_index=tuple(names[i] for i in missing[:_SHOWN]),
                extra_in_index=tuple(ids[~seen][:_SHOWN].tolist()),
                mismatched=tuple(names[i] for i in mismatched[:_SHOWN]),
                store_sequence=conn.max_sequence(),
                index_sequence=index_sequence,
                index_kind=kind,
            )
