"""Online backups of a gallery, and the checks a backup must pass before anything trusts it.

A backup of one modality is a folder ``<dest>/<modality>/``::

    store.sqlite3       the active generation's store, taken with SQLite's online backup API
    generation.json     the active generation (folder, model, version, dim) and the raw ACTIVE state
    extra/…             the generation's small files (GENERATION.json, COMPLETE.json, reports)
    previous/…          when an activation kept a previous generation for rollback: its store (the
                        same online backup) and its small files, so that a restored gallery can
                        still roll back (restore writes ACTIVE naming both)
    manifest.json       sha256 of every file above, the store's change-log sequence, identity count,
                        model, created time and toitsu version — written last

Why the backup API and not a file copy: the store is a live WAL database; copying ``store.sqlite3``
while a checkpoint runs, or without its ``-wal``, gives a torn or stale file. ``Connection.backup``
with ``pages=-1`` copies every page in ONE step, inside one read transaction of the source
connection; in WAL mode that transaction sees one committed snapshot, so each write committed
before the step began is in the backup whole, and each one committed after is not in it at all
(writers are not blocked meanwhile: WAL lets them commit next to the reader). A backup is written
into ``.partial-<modality>`` and renamed into place once its manifest is on disk, so a folder named
after a modality is always complete.

Track records, media, samples, the change log and the audit trail are tables of the store. The
FAISS index is not backed up: it is derived, and rebuilt from the store when a restored gallery
opens. Everything here runs in the process that holds the gallery open (the gateway).

The previous generation takes no writes while it is previous (it is retired); only a rollback or
a purge touches it, and both change ``ACTIVE``. So ``ACTIVE`` is read before and after the copies,
and a backup during which it changed is refused (UNAVAILABLE, back up again), never half of each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from contracts.atomic import fsync_dir, write_json_atomic
from serving.errors import FailedPrecondition, InvalidInput, Unavailable
from serving.gallery import generations
from serving.gallery.gallery import Gallery
from serving.gallery.rows import SqlRows

MANIFEST = "manifest.json"
STORE = "store.sqlite3"
PREVIOUS = "previous"  # the previous generation's part of a backup
FORMAT = 1
_EXTRA = ("GENERATION.json", "COMPLETE.json", "activation-report.json", "activation-report.png")


class BackupError(FailedPrecondition):
    """A backup that must not be restored: missing files, a bad checksum, a failed integrity check."""


@dataclass(frozen=True)
class Summary:
    """What a backup holds (the manifest, in short)."""

    modality: str
    path: str
    sequence: int
    identities: int
    model: str
    version: int
    dim: int
    created_at: float
    bytes: int
    seconds: float


def toitsu_version() -> str:
    try:
        return metadata.version("toitsu")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def take(gallery: Gallery, root: Path, dest: Path, modality: str) -> Summary:
    """Back ``gallery`` (the active generation under ``root``) up into ``dest/<modality>``."""
    started = time.perf_counter()
    final = Path(dest) / modality
    if final.exists():
        raise InvalidInput(f"{final} exists already: back up into a new folder")
    partial = Path(dest) / f".partial-{modality}-{uuid.uuid4().hex[:12]}"  # unique: backups may run at once
    partial.mkdir(parents=True)
    changed = Unavailable(f"the {modality} gallery generation changed during the backup; back up again")
    try:
        gallery.backup_store(partial / STORE)
        state = generations.read_state(root)
        active = (
            state.active
            if state
            else generations.Generation(".", gallery.binding.name, gallery.binding.version, gallery.dim)
        )
        write_json_atomic(
            partial / "generation.json", {"active": asdict(active), "state": state.to_json() if state else None}
        )
        source = active.path(root)
        if source.resolve() != Path(gallery.root).resolve():  # an activation swapped generations meanwhile
            raise changed
        _copy_extra(source, partial / "extra")
        previous = _take_previous(root, state, partial / PREVIOUS)
        if generations.read_state(root) != state:  # a rollback or purge while the copies ran
            raise changed
        with contextlib.closing(sqlite3.connect(partial / STORE)) as raw:
            conn = SqlRows(raw)
            sequence, identities = conn.max_sequence(), conn.count()
            store_uuid = conn.get_meta().get("uuid", "")
        manifest = {
            "format": FORMAT,
            "modality": modality,
            "created_at": time.time(),
            "toitsu_version": toitsu_version(),
            "store": {"sequence": sequence, "identities": identities, "uuid": store_uuid},
            "model": {"name": gallery.binding.name, "version": gallery.binding.version, "dim": gallery.dim},
            "files": {rel: checksum(partial / rel) for rel in _files(partial)},
        }
        if previous is not None:
            manifest["previous"] = previous
        write_json_atomic(partial / MANIFEST, manifest)
        partial.rename(final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summary(final, manifest, time.perf_counter() - started)


def _copy_extra(source: Path, extra: Path) -> None:
    for name in _EXTRA:
        if (source / name).is_file():
            extra.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, extra / name)


def _take_previous(root: Path, state: generations.State | None, target: Path) -> dict[str, Any] | None:
    """The previous generation's store and small files into ``target`` (what a rollback needs);
    None when there is none (no activation, or it was purged)."""
    previous = state.previous if state else None
    if previous is None or not (previous.path(root) / STORE).is_file():
        return None
    target.mkdir()
    # Its own connection: the gateway may hold the previous gallery open (retired, read-only) or not
    # at all (after a restart, until a rollback loads it); WAL lets both read at once.
    with contextlib.closing(sqlite3.connect(previous.path(root) / STORE)) as conn:
        copy_store(conn, target / STORE)
    _copy_extra(previous.path(root), target / "extra")
    with contextlib.closing(sqlite3.connect(target / STORE)) as raw:
        sequence, identities = SqlRows(raw).max_sequence(), SqlRows(raw).count()
    return {**asdict(previous), "sequence": sequence, "identities": identities}


def copy_store(source: sqlite3.Connection, target: Path) -> None:
    """The online backup proper: all pages in one step (one read snapshot), then a plain
    rollback-journal file, so that the backup is one self-contained file with nothing beside it."""
    with contextlib.closing(sqlite3.connect(target, isolation_level=None)) as out:
        source.backup(out, pages=-1)
        out.execute("PRAGMA journal_mode=DELETE")
    with open(target, "rb+") as f:
        os.fsync(f.fileno())


def checksum(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder} is not a usable backup: {MANIFEST} is unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a format-{FORMAT} gallery backup manifest")
    return manifest


def check(folder: Path) -> dict[str, Any]:
    """The manifest of a backup whose every file matches its checksum (BackupError otherwise)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = manifest.get("files") or {}
    if STORE not in listed:
        raise BackupError(f"{folder}: the manifest lists no {STORE}")
    for rel, want in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            raise BackupError(f"{folder}: {rel} is missing")
        got = checksum(path)
        if got["sha256"] != want.get("sha256") or got["bytes"] != want.get("bytes"):
            raise BackupError(f"{folder}: {rel} does not match its checksum (the backup is damaged); refusing it")
    return manifest


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of a store file, read-only: "ok" or what SQLite found."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    return "; ".join(str(r[0]) for r in rows[:5])


def summary(folder: Path, manifest: dict[str, Any], seconds: float = 0.0) -> Summary:
    model, stored = manifest["model"], manifest["store"]
    size = sum(int(f["bytes"]) for f in manifest["files"].values())
    return Summary(
        manifest["modality"],
        str(folder),
        int(stored["sequence"]),
        int(stored["identities"]),
        model["name"],
        int(model["version"]),
        int(model["dim"]),
        float(manifest["created_at"]),
        size,
        seconds,
    )


def verify(folder: Path) -> dict[str, Any]:
    """:func:`check`, plus SQLite's integrity check of every store in the backup (BackupError)."""
    manifest = check(folder)
    for rel in (STORE, f"{PREVIOUS}/{STORE}"):
        if rel in manifest["files"] and (problems := integrity(Path(folder) / rel)) != "ok":
            raise BackupError(f"{folder}: {rel} fails SQLite's integrity check ({problems})")
    return manifest


def listed(backups: Path, modality: str) -> list[tuple[float, Path]]:
    """(created_at, folder) of every backup of ``modality`` under ``backups`` (any depth) whose
    manifest reads, newest first; nothing is checked beyond the manifest."""
    found = []
    for path in Path(backups).rglob(MANIFEST) if Path(backups).is_dir() else ():
        if path.parent.name != modality:
            continue
        try:
            found.append((float(read_manifest(path.parent)["created_at"]), path.parent))
        except (BackupError, KeyError, TypeError, ValueError):
            continue
    return sorted(found, key=lambda item: item[0], reverse=True)


def newest_usable(backups: Path, modality: str) -> Summary | None:
    """The newest backup of ``modality`` under ``backups`` (any depth) that passes :func:`verify`."""
    for _, folder in listed(backups, modality):
        try:
            return summary(folder, verify(folder))
        except (BackupError, KeyError, TypeError, ValueError):
            continue
    return None


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
