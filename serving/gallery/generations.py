"""Gallery generations of one modality: which gallery folder is active, and which one a rollback
returns to (DESIGN §3 "Gallery": activation re-embeds into a shadow and swaps atomically).

Layout under the modality's root ``var/galleries/<modality>/``::

    store.sqlite3, index/, LOCK   the legacy (first) generation, folder "." — what a gateway
                                  without activations has always written; it is never moved
    gen-0002/ …                   one folder per later generation: a full gallery, plus
        GENERATION.json           what it was built for (model, version, dim, source) — written first
        COMPLETE.json             the re-embed and its final delta are in (written before the swap)
        activation-report.{json,png}
    ACTIVE                        JSON naming the active generation and the previous one

``ACTIVE`` is the one switch: replaced atomically (temp file, fsync, rename, fsync of the folder),
so after a crash at any point it names either the old generation or the new one, never neither.
Without it the legacy folder is the active generation. :func:`recover` runs before a gateway
opens a gallery: it deletes every generation folder that ACTIVE names neither as active nor as
previous (an activation killed before its swap, or a purge killed half-way), so exactly one
active gallery exists. Such a shadow is discarded, not resumed: a new activation rebuilds it from
the active gallery, which was never touched.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from contracts.atomic import write_json_atomic
from serving.errors import Unavailable
from serving.gallery.locking import FolderLock
from serving.gallery.types import ModelBinding

log = logging.getLogger("toitsu.gallery.generations")

ACTIVE = "ACTIVE"
LEGACY = "."
_GEN = re.compile(r"^gen-(\d{4,})$")
_LEGACY_FILES = ("store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm", "index")


@dataclass(frozen=True)
class Generation:
    """One gallery folder and the model version its templates come from.

    ``sequence_at_switch``: the gallery's change-log position when it last became active, so
    that a rollback replays into the previous gallery exactly what changed after that point.
    """

    folder: str  # "." (the legacy root) or "gen-NNNN"
    model: str
    version: int
    dim: int
    sequence_at_switch: int = 0
    switched_at: float = 0.0

    @property
    def binding(self) -> ModelBinding:
        return ModelBinding(self.model, self.version)

    def path(self, root: Path) -> Path:
        return Path(root) / self.folder if self.folder != LEGACY else Path(root)


@dataclass(frozen=True)
class State:
    """The content of ``ACTIVE``: the active generation and the one a rollback goes back to."""

    active: Generation
    previous: Generation | None = None

    def to_json(self) -> dict[str, object]:
        previous = asdict(self.previous) if self.previous else None
        return {"schema": 1, "active": asdict(self.active), "previous": previous}

    @classmethod
    def from_json(cls, raw: dict) -> State:
        prev = raw.get("previous")
        return cls(Generation(**raw["active"]), Generation(**prev) if prev else None)


def read_state(root: Path) -> State | None:
    """The persisted state, or None when no activation ever happened (the legacy folder is active)."""
    path = Path(root) / ACTIVE
    if not path.exists():
        return None
    try:
        return State.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise Unavailable(f"{path} is unreadable ({exc}); fix or remove it to serve the legacy gallery") from exc


def write_state(root: Path, state: State) -> None:
    """Persist ``state`` atomically: the swap point of an activation, a rollback or a purge."""
    write_json_atomic(Path(root) / ACTIVE, state.to_json())


def folders(root: Path) -> list[str]:
    """Generation folders present under ``root`` (``gen-NNNN``), oldest first; "." not included."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if p.is_dir() and _GEN.match(p.name)), key=_number)


def new_folder(root: Path) -> str:
    """The next generation folder's name (never one used before in this root)."""
    numbers = [_number(name) for name in folders(root)]
    state = read_state(root)
    for gen in (state.active, state.previous) if state else ():
        if gen is not None and gen.folder != LEGACY:
            numbers.append(_number(gen.folder))
    return f"gen-{max(numbers, default=1) + 1:04d}"


def start_shadow(root: Path, folder: str, info: dict[str, object]) -> Path:
    """Create a shadow generation's folder with its GENERATION.json (what it is being built for)."""
    path = Path(root) / folder
    path.mkdir(parents=True)
    write_json_atomic(path / "GENERATION.json", info)
    return path


def mark_complete(path: Path, info: dict[str, object]) -> None:
    write_json_atomic(Path(path) / "COMPLETE.json", info)


def is_complete(path: Path) -> bool:
    return (Path(path) / "COMPLETE.json").is_file()


def recover(root: Path) -> State | None:
    """Make exactly one active generation: drop folders ACTIVE does not name (see the module doc).

    A folder whose gallery lock is held (an activation running in this very process) is left
    alone. A ``previous`` whose folder is gone (a purge killed after its rename) is forgotten.
    """
    root = Path(root)
    state = read_state(root)
    keep = {g.folder for g in ((state.active, state.previous) if state else ()) if g is not None}
    if state is not None and state.active.folder != LEGACY and not state.active.path(root).is_dir():
        raise Unavailable(f"{root / ACTIVE} names {state.active.folder}, which does not exist")
    for name in folders(root):
        if name not in keep:
            _discard(root / name)
    for trash in root.glob(".trash-gen-*"):
        shutil.rmtree(trash, ignore_errors=True)
    if state is not None and state.previous is not None and not _exists(root, state.previous):
        log.warning("%s: the previous generation %s is gone; forgetting it", root, state.previous.folder)
        state = replace(state, previous=None)
        write_state(root, state)
    return state


def discard(root: Path, generation: Generation) -> None:
    """Delete a generation's gallery files (a purge). The legacy folder loses its store and index."""
    if generation.folder == LEGACY:
        for name in _LEGACY_FILES:
            target = Path(root) / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        return
    _discard(Path(root) / generation.folder)


def _discard(path: Path) -> None:
    try:
        lock = FolderLock.acquire(path)
    except Unavailable:
        log.info("%s is open (an activation under way); not discarding it", path)
        return
    except FileNotFoundError:
        return
    lock.release()
    trash = path.with_name(f".trash-{path.name}")  # one rename, so a half-deleted folder is never a gen
    shutil.rmtree(trash, ignore_errors=True)
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    log.warning("discarded the incomplete or purged gallery generation %s", path)


def _exists(root: Path, generation: Generation) -> bool:
    if generation.folder == LEGACY:
        return (Path(root) / "store.sqlite3").is_file()
    return (Path(root) / generation.folder).is_dir()


def _number(name: str) -> int:
    match = _GEN.match(name)
    return int(match.group(1)) if match else 0
