"""``verify`` of a gallery: SQLite's integrity check plus index = store, and — when the store is
damaged — the newest backup that would bring it back, named in the message (so that an operator
reading a NOT_SERVING reason or a failed verify knows the one command to run).

The gateway runs the same check on every gallery it opens (:func:`check_at_start`, unless
``backups.verify_at_start = false``): a store that opens but fails ``integrity_check`` (a page
damaged past the header) would otherwise serve, and fail, or answer wrong, only where the damage is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from serving.errors import FailedPrecondition, Unavailable
from serving.gallery import backup, generations
from serving.gallery.binding import stored_dim
from serving.gallery.gallery import Gallery
from serving.gallery.types import ConsistencyReport

log = logging.getLogger("toitsu.gallery.checkup")


@dataclass(frozen=True)
class Checkup:
    modality: str
    store: str
    integrity: str  # "ok", or what SQLite found
    consistency: ConsistencyReport | None  # None when the store could not be checked against the index
    newest_backup: backup.Summary | None
    backups: str = ""  # the backup folder searched ("" when none is configured)
    note: str = ""  # why the index was not checked (the gallery is not open)

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and self.consistency is not None and self.consistency.ok

    def message(self) -> str:
        if self.ok:
            assert self.consistency is not None
            return f"{self.modality}: ok ({self.consistency.store_count} identities, index = store)"
        if self.integrity != "ok":
            return damaged(self.modality, Path(self.store), self.integrity, self.newest_backup, self.backups)
        if self.consistency is None:
            return (
                f"{self.modality}: the store passes SQLite's integrity check; the index was not checked ({self.note})"
            )
        return f"{self.modality}: the index disagrees with the store ({self.consistency}); rebuild the index"


def active_store(root: Path) -> Path:
    """The store file of a modality root's active generation."""
    state = generations.read_state(root)
    return (state.active.path(root) if state else Path(root)) / backup.STORE


def check_open(gallery: Gallery, modality: str, backups: str) -> Checkup:
    """Check a gallery this process serves (the gateway's Verify)."""
    problems = gallery.integrity_check()
    report = gallery.verify_consistency() if problems == "ok" else None
    newest = backup.newest_usable(Path(backups), modality) if backups and problems != "ok" else None
    return Checkup(modality, str(Path(gallery.root) / backup.STORE), problems, report, newest, backups)


def check_unopened(root: Path, modality: str, backups: str, note: str = "") -> Checkup:
    """Check the store of a gallery that is not open (it failed to load, or the gateway is stopped)."""
    store = active_store(root)
    problems = backup.integrity(store) if store.is_file() else f"{store} does not exist"
    newest = backup.newest_usable(Path(backups), modality) if backups else None
    return Checkup(modality, str(store), problems, None, newest, backups, note)


def damaged(modality: str, store: Path, problems: str, newest: backup.Summary | None, backups: str = "") -> str:
    """What to say about a damaged store: the problem and the backup to restore."""
    if newest is not None:
        hint = (
            f"the newest usable backup is {newest.path} (sequence {newest.sequence}, {newest.identities} "
            f"identities): stop the gateway and run `toitsu gallery restore {newest.path} --var VAR --force`"
        )
    else:
        hint = "no usable backup was found" + (f" under {backups}" if backups else " (set paths.backups)")
    return f"the {modality} gallery store {store} is damaged ({problems}); {hint}"


def check_offline(root: Path, modality: str, backups: str) -> Checkup:
    """Check a gallery folder no gateway holds: the store file, then (if sound) index = store."""
    found = check_unopened(root, modality, backups)
    if found.integrity != "ok":
        return found
    store = Path(found.store)
    dim = stored_dim(store.parent)
    if dim is None:
        return replace(found, integrity=f"{store} has no gallery metadata")
    try:
        with Gallery.open(store.parent, modality=modality, dim=dim, model=None) as gallery:
            gallery.wait_idle(600)
            return replace(found, consistency=gallery.verify_consistency())
    except Unavailable as exc:  # e.g. a running gateway holds it: its Verify RPC checks it instead
        return replace(found, note=exc.message)


def damaged_store(folder: Path, modality: str, backups: str) -> FailedPrecondition | None:
    """A final (not retried) error for a gallery folder whose store fails SQLite's integrity check,
    naming the newest usable backup; None when the store is sound (the caller's error stands)."""
    store = Path(folder) / backup.STORE
    problems = backup.integrity(store) if store.is_file() else "ok"
    if problems == "ok":
        return None
    newest = backup.newest_usable(Path(backups), modality) if backups else None
    return FailedPrecondition(damaged(modality, store, problems, newest, backups))


def check_at_start(gallery: Gallery, modality: str, backups: str) -> None:
    """The check before a gallery serves: FailedPrecondition (final, naming the newest usable backup)
    for a store failing SQLite's integrity check; an index that disagrees with the store is rebuilt
    from the store (the index is derived) and checked again."""
    started = time.perf_counter()
    problems = gallery.integrity_check()
    if problems != "ok":
        newest = backup.newest_usable(Path(backups), modality) if backups else None
        raise FailedPrecondition(damaged(modality, Path(gallery.root) / backup.STORE, problems, newest, backups))
    report = gallery.verify_consistency()
    if report.ok:
        log.info(
            "%s: store integrity ok, index = store (%d identities), checked in %.2f s",
            modality,
            report.store_count,
            time.perf_counter() - started,
        )
        return
    log.warning("%s: the index disagrees with the store at start (%s); rebuilding it from the store", modality, report)
    gallery.rebuild_index()
    report = gallery.verify_consistency()
    if not report.ok:
        raise FailedPrecondition(f"the {modality} index disagrees with its store even after a rebuild ({report})")
