"""Index snapshots on disk: a data file plus ``index.json``, the commit point.

The data file (``index-<seq>-<nonce>.bin``) holds raw arrays back to back. It is written to a
temporary name, fsynced and renamed; then ``index.json`` (kind, dim, model binding, store uuid,
last applied change-log sequence number, array layout, size and CRC-32 of the data file) is
written the same way and the folder fsynced. A crash at any point leaves either the previous
snapshot or the new one, never a mix; anything that does not check out on load is reported as
:class:`SnapshotError` and the caller rebuilds from the store.
"""

from __future__ import annotations

import json
import os
import secrets
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

FORMAT = 1
MANIFEST = "index.json"
MISSING = "no snapshot"
_CHUNK = 64 * 1024 * 1024


class SnapshotError(Exception):
    """The snapshot is missing, unreadable, corrupt or does not belong to this gallery."""


def write(
    directory: Path, manifest: dict, sections: dict[str, np.ndarray], blank: dict[str, np.ndarray] | None = None
) -> Path:
    """Write ``sections`` and the manifest atomically; remove older data files. Returns the data file.

    ``blank`` names, per section, rows (first-axis indices) written as zeros: the dead slots of a
    pq-rerank index, whose vectors stay in memory until a compaction but must not reach the disk
    (a deleted identity's template). The arrays themselves are not modified (they are shared)."""
    name = f"index-{int(manifest['sequence'])}-{secrets.token_hex(4)}.bin"
    tmp = directory / (name + ".tmp")
    layout, crc, offset = {}, 0, 0
    try:
        with open(tmp, "wb") as f:
            for key, array in sections.items():
                array = np.ascontiguousarray(array)
                for part in _chunks(array, (blank or {}).get(key)):
                    f.write(part)
                    crc = zlib.crc32(part, crc)
                layout[key] = {"offset": offset, "dtype": array.dtype.str, "shape": list(array.shape)}
                offset += array.nbytes
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
        _write_json(
            directory / MANIFEST,
            {**manifest, "format": FORMAT, "file": name, "size": offset, "crc32": crc, "sections": layout},
        )
    finally:
        tmp.unlink(missing_ok=True)
    for old in directory.glob("index-*.bin*"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / name


def _chunks(array: np.ndarray, blank: np.ndarray | None) -> Iterator[memoryview]:
    """The bytes of ``array`` in pieces of about _CHUNK, with the ``blank`` rows zeroed in copies."""
    if blank is None or not len(blank) or array.ndim == 0:
        view = array.reshape(-1).view(np.uint8).data  # a memoryview of the bytes
        for start in range(0, len(view), _CHUNK):
            yield view[start : start + _CHUNK]
        return
    rows = max(1, _CHUNK // max(1, array[0].nbytes if len(array) else 1))
    blank = np.unique(blank)
    for start in range(0, len(array), rows):
        part = array[start : start + rows]
        inside = blank[(blank >= start) & (blank < start + len(part))] - start
        if len(inside):
            part = part.copy()
            part[inside] = 0
        yield np.ascontiguousarray(part).reshape(-1).view(np.uint8).data


def read(directory: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, sections) of the current snapshot, checked against its size and CRC-32."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(MISSING) from None
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"unknown snapshot format {manifest.get('format') if isinstance(manifest, dict) else '?'}")
    try:
        path = directory / Path(str(manifest["file"])).name
        data = bytearray(path.stat().st_size)
        if len(data) != manifest["size"]:
            raise SnapshotError(f"{path.name} has {len(data)} bytes, the manifest says {manifest['size']}")
        with open(path, "rb") as f:
            if f.readinto(data) != len(data):
                raise SnapshotError(f"{path.name} is shorter than it was a moment ago")
        if zlib.crc32(data) != manifest["crc32"]:
            raise SnapshotError(f"{path.name} fails its CRC-32 check")
        sections = {}
        for key, spec in manifest["sections"].items():
            dtype, shape = np.dtype(spec["dtype"]), tuple(int(s) for s in spec["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            sections[key] = np.frombuffer(data, dtype=dtype, count=count, offset=int(spec["offset"])).reshape(shape)
    except SnapshotError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"bad snapshot: {exc}") from None
    return manifest, sections


def discard(directory: Path) -> None:
    """Remove the snapshot (manifest first, so a half-removed snapshot is simply absent)."""
    (directory / MANIFEST).unlink(missing_ok=True)
    for old in directory.glob("index-*.bin*"):
        old.unlink(missing_ok=True)


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
