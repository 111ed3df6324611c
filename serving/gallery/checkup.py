"""``verify`` of a gallery: SQLite's integrity check plus index = store, and — when the store is
damaged — the newest backup that would bring it back, named in the message (so that an operator
reading a NOT_SERVING reason or a failed verify knows the one command to run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.gallery import backup, generations
from serving.gallery.gallery import Gallery
from serving.gallery.types import ConsistencyReport


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
