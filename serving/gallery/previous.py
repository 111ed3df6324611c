"""A Delete reaches the previous gallery generation too (issue 16: deletion that leaves nothing).

An activation keeps the gallery it replaced, so that a rollback can return to it
(:mod:`serving.gallery.generations`); that folder holds every identity as it was then: its stored
media and its template under the old model. A rollback replays deletes into it, but until then a
deleted identity would stay on disk there. So :meth:`Gallery.delete` on the active generation ends
here, and the identity is deleted from the previous generation as well, before Delete returns:

- previous gallery open in this process (the activator keeps it loaded for a rollback, or a
  rollback is replaying into it): through its own :meth:`Gallery.delete` (index and scrub too);
- not open (after a restart): on its store alone, under its folder lock, with a change-log row,
  then a WAL checkpoint, and its index snapshot removed (rebuilt from the store when it is loaded).
  A folder locked elsewhere (another process) is left, with a warning: the rollback that would
  load it replays the delete.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from serving.errors import NotFound, Unavailable
from serving.gallery import generations
from serving.gallery import snapshot as snap
from serving.gallery import store as st
from serving.gallery.locking import FolderLock
from serving.gallery.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from serving.gallery.gallery import Gallery

log = logging.getLogger(__name__)

OPEN: weakref.WeakValueDictionary[Path, Gallery] = weakref.WeakValueDictionary()
"""Galleries open in this process, by resolved folder (one per folder: the folder lock)."""


def folder(gallery: Gallery) -> Path | None:
    """The previous generation's folder when ``gallery`` is the active generation of its modality."""
    here = gallery.root.resolve()
    for root in (gallery.root, gallery.root.parent):  # the legacy generation is the root itself
        try:
            state = generations.read_state(root)
        except Unavailable:
            continue
        if state is not None and state.active.path(root).resolve() == here and state.previous is not None:
            return state.previous.path(root).resolve()
    return None


def delete(gallery: Gallery, external: str, actor: str) -> bool:
    """Delete ``external`` from the previous generation of ``gallery``, if there is one holding it."""
    path = folder(gallery)
    if path is None or path == gallery.root.resolve() or not (path / "store.sqlite3").is_file():
        return False
    other = OPEN.get(path)
    if other is not None:
        try:
            other.delete(external, actor=actor, while_retired=True)
        except NotFound:
            return False
        return True
    try:
        lock = FolderLock.acquire(path)
    except (Unavailable, FileNotFoundError) as exc:
        log.warning("%s: not deleting %r from the previous generation now (%s); a rollback will", path, external, exc)
        return False
    try:
        return _delete_closed(path, external, actor)
    finally:
        lock.release()


def _delete_closed(path: Path, external: str, actor: str) -> bool:
    store = SqliteStore.open(path / "store.sqlite3")
    try:
        with store.transaction() as conn:
            found = conn.find_identity(external)
            kept = conn.forget_kept(external)
            if found is not None:
                conn.delete_identity(found[0])
                now = st.now()
                conn.log_change("delete", found[0], now)
                conn.audit(now, "delete", external, actor, {"generation": "previous"})
        if found is None:
            return kept
        if not store.checkpoint():
            log.warning("%s: the WAL checkpoint after deleting %r did not complete", path, external)
    finally:
        store.close()
    snap.discard(path / "index")
    return True
