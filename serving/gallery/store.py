"""The gallery's source of truth, behind one interface: :class:`GalleryStore`.

Two implementations: :class:`~serving.gallery.sqlite_store.SqliteStore`, the embedded default (one
``store.sqlite3`` in the gallery folder), and :class:`~serving.gallery.postgres_store.PostgresStore`
(``[gallery] backend = "postgres"``: one schema per gallery in a PostgreSQL database, which several
gateways can share). Both hold the same tables (identities, templates, samples, media, tracks,
kept_on_old, the change log ``changes`` and ``audit``) and hand out the same row operations,
:class:`~serving.gallery.rows.SqlRows`, inside a transaction or a read.

Row ids of ``identities`` are never reused: a row id is the FAISS id, and a change-log entry
always names exactly one identity's life.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from serving.errors import InvalidInput, Unavailable
from serving.gallery.rows import SqlRows, now
from serving.gallery.types import GalleryConfig

SCHEMA_VERSION = 2  # 2: media.sample_id, kept_on_old (re-embedding after a model change)
BACKENDS = ("sqlite", "postgres")

__all__ = ["BACKENDS", "SCHEMA_VERSION", "GalleryStore", "SqlRows", "now", "open_store", "schema_name"]


class GalleryStore(Protocol):
    """Connections to one gallery's tables. Writes are durable once :meth:`transaction` returns."""

    @property
    def label(self) -> str:
        """Where the store is, for messages (a file path, or a database schema)."""

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgres"."""

    def transaction(self) -> AbstractContextManager[SqlRows]:
        """One atomic, durable write: committed when the block ends, rolled back if it raises;
        writes of one gallery are serialised (across processes, too)."""

    def reader(self) -> AbstractContextManager[SqlRows]:
        """Rows on a read-only connection for this thread's exclusive use until the block ends."""

    def read_snapshot(self) -> AbstractContextManager[SqlRows]:
        """A reader inside one read transaction: every query sees the same committed state."""

    def checkpoint(self) -> bool:
        """Take older copies of deleted rows off the disk where the engine keeps them; True when done."""

    def integrity_check(self) -> str:
        """ "ok", or the first problems the engine's own check found."""

    def close(self) -> None:
        """Close every connection (callers must have stopped using them); idempotent."""


def open_store(root: Path, config: GalleryConfig) -> GalleryStore:
    """The configured backend's store for the gallery in folder ``root``."""
    if config.backend == "postgres":
        try:
            from serving.gallery.postgres_store import PostgresStore  # psycopg only where it is used
        except ImportError as exc:
            raise Unavailable(
                f'[gallery] backend = "postgres" needs psycopg ({exc}): install toitsu[postgres]'
            ) from None

        return PostgresStore.open(config.dsn, schema_name(root))
    from serving.gallery.sqlite_store import SqliteStore

    return SqliteStore.open(root / "store.sqlite3")


def schema_name(root: Path) -> str:
    """The PostgreSQL schema of the gallery in folder ``root``: from its name (the modality's
    folder, ``var/galleries/speaker``) and that of its generation (``speaker/gen-0002``), never from
    the absolute path, so that gateways with different data folders share it."""
    root = Path(root)
    generation = re.fullmatch(r"gen-\d+", root.name)
    name = f"toitsu_{root.parent.name}_{root.name}" if generation else f"toitsu_{root.name}"
    name = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise InvalidInput(f"cannot name a PostgreSQL schema after gallery {root} ({name!r})")
    return name
