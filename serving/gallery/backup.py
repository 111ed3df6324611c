"""Online backups of a gallery, and the checks a backup must pass before anything trusts it.

A backup of one modality is a folder ``<dest>/<modality>/``::

    store.sqlite3       the active generation's store, taken with SQLite's online backup API
    generation.json     the active generation (folder, model, version, dim) and the raw ACTIVE state
    extra/…             the generation's small files (GENERATION.json, COMPLETE.json, reports)
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
from serving.gallery import store as st
from serving.gallery.gallery import Gallery

MANIFEST = "manifest.json"
STORE = "store.sqlite3"
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
            raise Unavailable(f"the {modality} gallery generation changed during the backup; back up again")
        for name in _EXTRA:
            if (source / name).is_file():
                (partial / "extra").mkdir(exist_ok=True)
                shutil.copyfile(source / name, partial / "extra" / name)
        with contextlib.closing(sqlite3.connect(partial / STORE)) as conn:
            sequence, identities = st.max_sequence(conn), st.count(conn)
            store_uuid = st.get_meta(conn).get("uuid", "")
        manifest = {
            "format": FORMAT,
            "modality": modality,
            "created_at": time.time(),
            "toitsu_version": toitsu_version(),
            "store": {"sequence": sequence, "identities": identities, "uuid": store_uuid},
            "model": {"name": gallery.binding.name, "version": gallery.binding.version, "dim": gallery.dim},
            "files": {rel: checksum(partial / rel) for rel in _files(partial)},
        }
        write_json_atomic(partial / MANIFEST, manifest)
        partial.rename(final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summary(final, manifest, time.perf_counter() - started)


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


def newest_usable(backups: Path, modality: str) -> Summary | None:
    """The newest backup of ``modality`` under ``backups`` (any depth) that passes :func:`check`."""
    found = []
    for path in Path(backups).rglob(MANIFEST) if Path(backups).is_dir() else ():
        if path.parent.name != modality:
            continue
        try:
            manifest = check(path.parent)
        except BackupError:
            continue
        found.append(summary(path.parent, manifest))
    return max(found, key=lambda s: s.created_at, default=None)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
