"""A gallery of enrolled identities for one modality: the SQLite store (truth) + the FAISS index
(derived), bound to one model version (DESIGN §3 "Gallery").

Folder layout: ``store.sqlite3`` (+ WAL), ``index/`` (snapshot), ``LOCK`` (one process at a time).
"""

from __future__ import annotations

import builtins
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from serving.errors import (
    InvalidInput,
    NotFound,
    Unavailable,
)
from serving.gallery import previous, validate, writes
from serving.gallery import store as st
from serving.gallery.binding import bind, decode_token, encode_token
from serving.gallery.follow import Follower
from serving.gallery.keeper import IndexKeeper
from serving.gallery.locking import FolderLock
from serving.gallery.rows import SqlRows
from serving.gallery.types import (
    ConsistencyReport,
    EnrollMode,
    EnrollResult,
    GalleryConfig,
    IdentityInfo,
    IndexInfo,
    Match,
    Media,
    ModelBinding,
)
from serving.gallery.writes import Shape, Write

log = logging.getLogger(__name__)

_SEARCH_SLACK = 8  # extra candidates, in case some were deleted between the index search and the id lookup
_MAX_PAGE = 10_000

R = TypeVar("R")


class Gallery:
    """Use :meth:`open`. Thread-safe: searches run concurrently, writes are serialised."""

    def __init__(
        self,
        root: Path,
        modality: str,
        dim: int,
        binding: ModelBinding,
        store: st.GalleryStore,
        keeper: IndexKeeper,
        lock: FolderLock,
        config: GalleryConfig,
    ) -> None:
        self.root, self.modality, self.dim = root, modality, dim
        self._binding, self._store, self._keeper, self._lock, self._config = binding, store, keeper, lock, config
        self._closed = False
        self._retired: str | None = None  # set: this gallery is no longer the active one; writes say why
        self._follower: Follower | None = None
        if store.backend == "postgres":  # other gateways may write it too
            self._follower = Follower(keeper, config.follow_interval_ms / 1000, str(root))
            self._follower.start()

    @classmethod
    def open(
        cls, root: Path, *, modality: str, dim: int, model: ModelBinding | None, config: GalleryConfig = GalleryConfig()
    ) -> Gallery:
        """Open (creating if needed) the gallery in ``root``; load or rebuild its index.

        ``model`` is the binding the caller will enroll and search with. A new gallery, or one with
        no identities, takes it. A gallery holding templates of another model raises ModelMismatch:
        its templates cannot be compared with that model's embeddings (an activation re-embeds them
        into a new generation, serving.activation). ``model=None`` opens with whatever binding is
        stored (tools, the source of a re-embed).
        """
        modality, dim = validate.gallery_shape(modality, dim)
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        lock = FolderLock.acquire(root)
        store = None
        try:
            store = st.open_store(root, config)
            binding, store_uuid = bind(store, modality, dim, model)
            keeper = IndexKeeper(root / "index", store, dim, binding, store_uuid, config)
            keeper.load()
        except BaseException:
            if store is not None:
                store.close()
            lock.release()
            raise
        gallery = cls(root, modality, dim, binding, store, keeper, lock, config)
        previous.OPEN[root.resolve()] = gallery
        return gallery

    @property
    def binding(self) -> ModelBinding:
        return self._binding

    @property
    def config(self) -> GalleryConfig:
        return self._config

    @property
    def _shape(self) -> Shape:
        return Shape(self.modality, self.dim, self._binding, self._config.max_samples)

    # --- writes ---------------------------------------------------------------------------------

    def enroll(
        self,
        identity: str,
        embeddings: np.ndarray,
        *,
        model: ModelBinding,
        mode: EnrollMode = EnrollMode.CREATE,
        media: Sequence[Media] = (),
        metadata: Mapping[str, str] | None = None,
        actor: str = "",
    ) -> EnrollResult:
        """Enroll ``embeddings`` [n, dim] (or one [dim]) for ``identity``; acknowledged once committed.

        The template is the L2-normalised mean of the L2-normalised samples, over all of the
        identity's samples in APPEND mode. ``metadata`` (if non-empty) is merged into the stored
        one in APPEND mode and replaces it otherwise. Raises InvalidInput, AlreadyExists (CREATE
        of an existing id), NotFound (APPEND/REPLACE of a missing one), ModelMismatch, Overloaded.
        """
        external = validate.identity(identity)
        validate.binding(self._binding, model, self.modality)
        if not isinstance(mode, EnrollMode):
            raise InvalidInput(f"unknown enroll mode {mode!r}")
        unit = validate.embeddings(embeddings, self.dim, self._config.max_samples)
        items = validate.media(media, self._config.max_media_bytes)
        meta = validate.metadata(metadata, self._config.max_metadata_bytes)
        return self.commit(
            lambda conn: writes.enroll_rows(conn, self._shape, external, unit, mode, items, meta, validate.actor(actor))
        )

    def commit(self, change: Callable[[SqlRows], Write[R]], *, while_retired: bool = False) -> R:
        """Run ``change`` in one store transaction, then apply its rows to the index; its result.

        Every write goes through here (and so do modules that keep their own rows beside the
        gallery's, such as :class:`~serving.gallery.tracks.TrackLedger`): the change is
        acknowledged only once committed, and a crash between the commit and the index update
        loses nothing, because the index replays the change log at start. A retired gallery (no
        longer the active generation) refuses writes, except the re-embedding's own
        (``while_retired``, serving.gallery.reembed: a rollback brings it up to date).
        """
        self._check_open()
        with self._keeper.writing():
            if self._retired is not None and not while_retired:
                raise Unavailable(self._retired)
            with self._store.transaction() as conn:
                done = change(conn)
            if self._follower is not None:  # a shared store: other replicas' changes may come first
                self._catch_up()
            else:
                ids = np.array([row for row, _ in done.upserts], np.int64)
                vectors = (
                    np.stack([v for _, v in done.upserts]) if done.upserts else np.zeros((0, self.dim), np.float32)
                )
                self._keeper.apply(done.sequence, ids, vectors, np.array(done.deletes, np.int64))
        if done.deletes:
            self._scrub()
        self._keeper.after_write(deleted=bool(done.deletes))
        return done.result

    def _catch_up(self) -> None:
        """Index the log up to this commit; a failed read does not fail the committed write (the
        follower applies it at its next poll)."""
        try:
            self._keeper.catch_up()
        except Exception as exc:
            log.warning(
                "gallery %s: reading the change log after a commit failed (%s); the next poll retries", self.root, exc
            )

    def _scrub(self) -> None:
        """After a commit that deleted identities: no file keeps their templates or media (issue 16).

        ``secure_delete`` has zeroed the rows in the pages the delete wrote; the older copies of
        those pages are still in the WAL (until a checkpoint) and the vectors in the index snapshot.
        So: checkpoint with TRUNCATE (the WAL file goes to zero bytes) and remove the snapshot (the
        keeper writes a new one in the background; a restart before it rebuilds from the store),
        unless ``gallery.snapshot_after_delete`` is off (then the old snapshot stays until a due one)."""
        if self._config.snapshot_after_delete:
            self._keeper.forget_snapshot()
        if not self._store.checkpoint():
            log.warning(
                "gallery %s: the WAL checkpoint after a delete did not complete (a long read?); the next "
                "delete or the close retries it",
                self.root,
            )

    def enroll_many(
        self, items: Iterable[tuple[str, np.ndarray]], *, model: ModelBinding, actor: str = "", batch_size: int = 10_000
    ) -> int:
        """Bulk CREATE: ``(identity, embeddings)`` pairs, one transaction (and index update) per batch.

        A batch is all or nothing: an id that exists already (AlreadyExists) or twice in the batch
        (InvalidInput) fails it, and earlier batches stay committed. Returns how many were enrolled.
        """
        validate.binding(self._binding, model, self.modality)
        if batch_size < 1:
            raise InvalidInput("batch_size must be at least 1")
        who, total = validate.actor(actor), 0
        for batch in writes.batches(items, self.dim, self._config.max_samples, batch_size):
            total += self.commit(functools.partial(writes.create_rows, batch=batch, binding=self._binding, actor=who))
        return total

    def delete(self, identity: str, *, actor: str = "", while_retired: bool = False) -> None:
        """Remove the identity with its template, samples and media from store and index; audited.

        The previous generation (what a rollback returns to) loses it too, before this returns:
        its copy (media, and a template under the old model) is on disk as well, and a rollback
        would delete it anyway (:mod:`serving.gallery.previous`)."""
        external = validate.identity(identity)

        def remove(conn: SqlRows) -> Write[None]:
            return writes.delete_rows(conn, self.modality, external, validate.actor(actor))

        try:
            self.commit(remove, while_retired=while_retired)
        except NotFound:
            if not previous.delete(self, external, validate.actor(actor)):
                raise
            return  # only the previous generation had it (dropped by the activation): gone from there
        previous.delete(self, external, validate.actor(actor))

    # --- reads ----------------------------------------------------------------------------------

    def template(self, identity: str) -> np.ndarray:
        """The identity's template: [dim] float32, unit norm."""
        external = validate.identity(identity)
        with self._reading(), self._store.reader() as conn:
            vector = conn.template(external, self.dim)
            if vector is None:
                raise writes.missing(conn, self._shape, external)
        return vector

    def score(self, identity: str, probe: np.ndarray, *, model: ModelBinding) -> float:
        """Cosine similarity of ``probe`` [dim] to the identity's template (1:1 verification)."""
        validate.binding(self._binding, model, self.modality)
        unit = validate.probe(probe, self.dim)
        return float(np.dot(self.template(identity), unit))

    def search(self, probe: np.ndarray, k: int, *, model: ModelBinding) -> list[Match]:
        """The ``k`` best identities by cosine, best first (``k`` capped at the gallery size)."""
        validate.binding(self._binding, model, self.modality)
        unit = validate.probe(probe, self.dim)
        k = validate.top_k(k, self._config)
        with self._reading() as index:
            if index.size == 0:
                return []
            ids, scores = index.search(unit, min(k + _SEARCH_SLACK, index.size), self._config.search_threads)
            with self._store.reader() as conn:
                names = conn.external_ids(ids.tolist())
        return [Match(names[i], float(s)) for i, s in zip(ids.tolist(), scores.tolist()) if i in names][:k]

    def info(self, identity: str) -> IdentityInfo:
        external = validate.identity(identity)
        with self._reading(), self._store.reader() as conn:
            found = conn.info(external)
            if found is None:
                raise writes.missing(conn, self._shape, external)
        return found

    def list(self, *, page_size: int = 100, page_token: str = "") -> tuple[list[IdentityInfo], str]:
        """A page of identities in identity order and the token of the next page ("" after the last).

        Keyset pagination on the identity string: stable under concurrent enrollments and deletes,
        every identity present throughout the listing appears exactly once.
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 0 < page_size <= _MAX_PAGE:
            raise InvalidInput(f"page_size must be between 1 and {_MAX_PAGE}, not {page_size!r}")
        after = decode_token(page_token)
        with self._reading(), self._store.reader() as conn:
            rows = conn.page(after, page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        return rows, encode_token(rows[-1].identity) if more else ""

    def media(self, identity: str) -> builtins.list[Media]:
        """The identity's stored enrollment media, oldest first (for re-embedding)."""
        external = validate.identity(identity)
        with self._reading(), self._store.reader() as conn:
            found = conn.find_identity(external)
            if found is None:
                raise NotFound(f"{self.modality} {external!r} is not enrolled")
            return conn.media(found[0])

    def audit_log(self, identity: str | None = None, limit: int = 1000) -> builtins.list[dict[str, object]]:
        """Audit rows, newest first (optionally for one identity)."""
        with self._reading(), self._store.reader() as conn:
            return conn.audit_log(identity, limit)

    def __len__(self) -> int:
        return self._keeper.info().size

    # --- index management -----------------------------------------------------------------------

    def index_info(self) -> IndexInfo:
        return self._keeper.info()

    def snapshot(self) -> None:
        self._check_open()
        self._keeper.snapshot()

    def rebuild_index(self) -> None:
        """Rebuild the index from the store now (in this thread), in the kind its size calls for.

        The repair for a failed :meth:`verify_consistency`; searches go on meanwhile.
        """
        self._check_open()
        self._keeper.rebuild(from_store=True)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for background snapshots/rebuilds to finish; False on timeout."""
        return self._keeper.wait_idle(timeout)

    def verify_consistency(self) -> ConsistencyReport:
        """Index ids == store ids and every index vector == its stored template (O(gallery size))."""
        self._check_open()
        return self._keeper.verify()

    def close(self) -> None:
        """Finish background work, snapshot, close the store and release the folder; idempotent."""
        if self._closed:
            return
        if self._follower is not None:
            self._follower.stop()
        self._keeper.stop()
        with self._keeper.exclusive():  # wait for in-flight reads and writes
            if self._closed:
                return
            self._closed = True
        try:
            self._keeper.snapshot()
        finally:
            previous.OPEN.pop(self.root.resolve(), None)
            self._store.close()
            self._lock.release()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- generations (serving.activation) -------------------------------------------------------

    @contextmanager
    def paused_writes(self) -> Iterator[None]:
        """Hold every write back (they wait) for the block: the final delta and swap of an activation."""
        self._check_open()
        with self._keeper.writing():
            yield

    def retire(self, reason: str) -> None:
        """This gallery is no longer the active one: reads go on (requests in flight finish on it),
        every later write raises Unavailable(``reason``). Call inside :meth:`paused_writes`."""
        self._retired = reason

    def reinstate(self) -> None:
        """Active again (a rollback): writes are accepted."""
        self._retired = None

    @property
    def retired(self) -> bool:
        return self._retired is not None

    @property
    def sequence(self) -> int:
        """The last committed change-log sequence number."""
        with self.reader() as conn:
            return conn.max_sequence()

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"the {self.modality} gallery is closed")

    def _reading(self):
        self._check_open()
        return self._keeper.reading()

    @contextmanager
    def reader(self) -> Iterator[SqlRows]:
        """A read-only store connection, taken as every read of the gallery takes one."""
        with self._reading(), self._store.reader() as conn:
            yield conn

    def backup_store(self, target: Path) -> None:
        """Copy the store into ``target`` with SQLite's online backup API, in one read snapshot:
        every write committed before it started is in the copy, none committed later is (see
        :mod:`serving.gallery.backup`). Writers and searches go on meanwhile."""
        from serving.gallery.backup import copy_store  # the backup module imports this one

        if self._store.backend != "sqlite":
            raise Unavailable(f"gallery backups copy a SQLite store; back {self._store.label} up with pg_dump")
        with self.reader() as conn:
            copy_store(conn.conn, Path(target))

    def integrity_check(self) -> str:
        """The store engine's own check: "ok", or the first problems it found."""
        self._check_open()
        return self._store.integrity_check()
