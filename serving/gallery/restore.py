"""Restoring a gallery backup (:mod:`serving.gallery.backup`) into a ``var/`` folder, offline.

Offline because a served gallery is locked by its gateway (``LOCK``): a restore runs with the
gateway stopped, and refuses a gallery whose lock is held whatever ``force`` says. Order of work,
so that nothing unchecked is ever swapped in:

1. every file of the backup matches the manifest's sha256 (else BackupError, nothing touched);
2. the store is copied into ``var/galleries/.restore-<modality>`` (beside its final place, same
   file system) laid out as the generation it came from, with its ``ACTIVE`` state, and
   ``PRAGMA integrity_check`` runs on that copy;
3. the copy is opened as a gallery: its FAISS index is rebuilt from the store (a backup holds no
   index) and checked against it (``verify_consistency``); closing it writes the index snapshot.
   A backup that holds the previous generation (kept by an activation for rollback) gets steps 2
   and 3 for it too, into its own folder, and ``ACTIVE`` names both, so Rollback works after a
   restore as before it (it replays the active store's change log since the switch, which the
   active store's backup holds);
4. the swap: an existing modality root (only with ``force``) is renamed to
   ``.replaced-<modality>-<time>`` — kept, never deleted: it may be the only copy of something —
   and the restored folder is renamed into place. Both renames are atomic; between them the root
   is absent, which a gateway reports as an empty gallery rather than a mixed one.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from contracts.atomic import fsync_dir, write_json_atomic
from serving.errors import FailedPrecondition, Unavailable
from serving.gallery import backup, generations
from serving.gallery.gallery import Gallery
from serving.gallery.locking import FolderLock
from serving.gallery.types import ConsistencyReport, GalleryConfig, ModelBinding


@dataclass(frozen=True)
class Restored:
    modality: str
    root: str
    identities: int
    sequence: int
    replaced: str  # where the gallery that was there before now is ("" if there was none)
    consistency: ConsistencyReport
    seconds: float


def backups_in(src: Path) -> list[Path]:
    """The modality backups ``src`` holds: itself (a ``<modality>/`` folder) or its children."""
    src = Path(src)
    if (src / backup.MANIFEST).is_file():
        return [src]
    found = sorted(p for p in src.iterdir() if (p / backup.MANIFEST).is_file()) if src.is_dir() else []
    if not found:
        raise backup.BackupError(f"{src} holds no gallery backup (no {backup.MANIFEST})")
    return found


def restore_all(
    src: Path, var: Path, *, force: bool = False, config: GalleryConfig = GalleryConfig()
) -> list[Restored]:
    """Restore every modality backup in ``src`` (:func:`backups_in`); all are checked before any is restored."""
    folders = backups_in(src)
    for folder in folders:
        backup.check(folder)
    return [restore(folder, var, force=force, config=config) for folder in folders]


def restore(src: Path, var: Path, *, force: bool = False, config: GalleryConfig = GalleryConfig()) -> Restored:
    """Restore the one-modality backup ``src`` into ``var/galleries/<modality>`` (see the module doc)."""
    started = time.perf_counter()
    src = Path(src)
    manifest = backup.check(src)
    modality, model = manifest["modality"], manifest["model"]
    galleries = Path(var) / "galleries"
    root = galleries / modality
    _refuse_live(root, force)
    generation = json.loads((src / "generation.json").read_text())
    active = generations.Generation(**generation["active"])
    previous = _previous(src, manifest, generation)
    temp = galleries / f".restore-{modality}"
    shutil.rmtree(temp, ignore_errors=True)
    active.path(temp).mkdir(parents=True)
    try:
        report = _place(src, active.path(temp), modality, model, config)
        identities, sequence = report.store_count, report.store_sequence
        if identities != manifest["store"]["identities"]:
            raise backup.BackupError(f"{src}: the restored gallery does not check out ({report})")
        if previous is not None:  # the generation a rollback returns to, checked the same way
            previous.path(temp).mkdir(parents=True, exist_ok=True)
            binding = {"name": previous.model, "version": previous.version, "dim": previous.dim}
            back = _place(src / backup.PREVIOUS, previous.path(temp), modality, binding, config)
            if back.store_count != manifest["previous"]["identities"]:
                raise backup.BackupError(f"{src}: the restored previous generation does not check out ({back})")
        if generation.get("state") is not None:
            write_json_atomic(temp / generations.ACTIVE, generations.State(active, previous).to_json())
        replaced = _swap(temp, root)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return Restored(modality, str(root), identities, sequence, replaced, report, time.perf_counter() - started)


def _previous(src: Path, manifest: dict, generation: dict) -> generations.Generation | None:
    """The previous generation the backup holds, or None (there was none, or an older backup)."""
    state = generation.get("state")
    if state is None or not state.get("previous") or "previous" not in manifest:
        return None
    if f"{backup.PREVIOUS}/{backup.STORE}" not in manifest["files"]:
        raise backup.BackupError(f"{src}: the manifest names a previous generation but lists no store for it")
    return generations.State.from_json(state).previous


def _place(src: Path, folder: Path, modality: str, model: dict, config: GalleryConfig) -> ConsistencyReport:
    """Copy one backed-up store (and its small files) into ``folder``, integrity-check it, open it
    (the index is rebuilt from the store), check its binding and index = store."""
    shutil.copyfile(src / backup.STORE, folder / backup.STORE)
    problems = backup.integrity(folder / backup.STORE)
    if problems != "ok":
        raise backup.BackupError(f"{src}: the store fails SQLite's integrity check ({problems}); refusing it")
    for extra in sorted((src / "extra").glob("*")) if (src / "extra").is_dir() else ():
        shutil.copyfile(extra, folder / extra.name)
    # model=None: the store's own binding, checked below against the manifest's.
    with Gallery.open(folder, modality=modality, dim=int(model["dim"]), model=None, config=config) as gallery:
        if gallery.binding != ModelBinding(model["name"], int(model["version"])):
            raise backup.BackupError(f"{src}: the store is bound to {gallery.binding}, the manifest says {model}")
        gallery.wait_idle(600)
        report = gallery.verify_consistency()
    if not report.ok:
        raise backup.BackupError(f"{src}: the restored gallery does not check out ({report})")
    return report


def _refuse_live(root: Path, force: bool) -> None:
    """FailedPrecondition for a gallery a process holds open (always) or one with data (without force)."""
    if not root.exists():
        return
    state = generations.read_state(root) if (root / generations.ACTIVE).is_file() else None
    folders = [root] + [root / name for name in generations.folders(root)]
    if state is not None:
        folders.append(state.active.path(root))
    for folder in folders:
        if (folder / "LOCK").exists():
            try:
                FolderLock.acquire(folder).release()
            except Unavailable:
                raise FailedPrecondition(
                    f"{folder} is open in a running gateway: stop it before restoring (or back up through it)"
                ) from None
    if not force and (any(root.iterdir())):
        raise FailedPrecondition(f"{root} holds a gallery already; pass --force to replace it (it is kept beside)")


def _swap(temp: Path, root: Path) -> str:
    replaced = ""
    if root.exists():
        aside = root.with_name(f".replaced-{root.name}-{time.strftime('%Y%m%dT%H%M%S')}")
        root.rename(aside)
        replaced = str(aside)
    temp.rename(root)
    fsync_dir(root.parent)
    return replaced
