"""A gallery's meta (modality, dimension, model binding, uuid) checked or created at open, and
the listing's page tokens."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import sqlite3
import uuid
from pathlib import Path

from serving.errors import InvalidInput, ModelMismatch, Unavailable
from serving.gallery.rows import now
from serving.gallery.store import SCHEMA_VERSION, GalleryStore
from serving.gallery.types import ModelBinding


def stored_dim(root: Path) -> int | None:
    """The template dimension a gallery folder's SQLite store holds (read-only peek at its meta), or None."""
    path = Path(root) / "store.sqlite3"
    if not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
    except sqlite3.Error:
        return None
    return int(row[0]) if row else None


def bind(store: GalleryStore, modality: str, dim: int, model: ModelBinding | None) -> tuple[ModelBinding, str]:
    """Create or check the gallery's meta; returns (binding, store uuid)."""
    with store.transaction() as conn:
        meta = conn.get_meta()
        if not meta:
            if model is None:
                raise InvalidInput("a new gallery needs a model binding")
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "modality": modality,
                "dim": str(dim),
                "model_name": model.name,
                "model_version": str(model.version),
                "uuid": uuid.uuid4().hex,
            }
            conn.set_meta(meta)
            conn.audit(now(), "create", None, "", {"modality": modality, "dim": dim, "model": str(model)})
        if int(meta["schema_version"]) > SCHEMA_VERSION:
            raise Unavailable(f"gallery schema {meta['schema_version']} is newer than this server's ({SCHEMA_VERSION})")
        if int(meta["schema_version"]) < SCHEMA_VERSION:  # Store.open migrated the tables
            conn.set_meta({"schema_version": str(SCHEMA_VERSION)})
        if meta["modality"] != modality:
            raise InvalidInput(f"{store.label} is a {meta['modality']} gallery, not {modality}")
        if int(meta["dim"]) != dim:
            raise ModelMismatch(f"{store.label} holds {meta['dim']}-d templates; the model makes {dim}-d")
        stored = ModelBinding(meta["model_name"], int(meta["model_version"]))
        if model is not None and model != stored:
            if conn.count():
                raise ModelMismatch(
                    f"the {modality} gallery is bound to {stored}, not {model}; activate {model} "
                    f"(`toitsu models activate {modality} {model.name} {model.version}`) to re-embed it"
                )
            conn.set_meta({"model_name": model.name, "model_version": str(model.version)})
            conn.audit(now(), "rebind", None, "", {"from": str(stored), "to": str(model)})
            stored = model
        return stored, meta["uuid"]


def encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        after = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["after"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise InvalidInput("page_token is not a token this server issued") from None
    if not isinstance(after, str):
        raise InvalidInput("page_token is not a token this server issued")
    return after
