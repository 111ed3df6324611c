"""JSONL manifests: one utterance / image / clip per line (DESIGN §4).

Each line is a flat JSON object with the fixed keys ``path``, ``identity``, ``duration`` and
``split``; every other key is a free extra field (video/track id, voice, text, channel effect…).
Paths are stored relative to the manifest's folder so that a corpus can be moved or copied as a
whole, and are resolved to absolute paths on read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FIXED_KEYS = ("path", "identity", "duration", "split")


@dataclass(frozen=True)
class ManifestRecord:
    """One manifest line.

    path: the media file (absolute after ``read_manifest``).
    identity: speaker / face identity or class label; None when unknown.
    duration: seconds, None for media without a duration (images).
    split: e.g. "train", "heldout", "enroll", "test".
    extra: any further JSON-serialisable fields; their keys must not clash with the fixed ones.
    """

    path: Path
    identity: str | None
    duration: float | None
    split: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json_dict(self, root: Path | None = None) -> dict[str, Any]:
        """The flat JSON object for this record; ``path`` is made relative to ``root`` if given."""
        clash = set(self.extra) & set(_FIXED_KEYS)
        if clash:
            raise ValueError(f"extra fields {sorted(clash)} clash with the fixed manifest keys")
        path = Path(self.path)
        if root is not None and path.is_absolute():
            path = Path(os.path.relpath(path, root))
        return {
            "path": path.as_posix(),
            "identity": self.identity,
            "duration": self.duration,
            "split": self.split,
            **self.extra,
        }

    @classmethod
    def from_json_dict(cls, obj: Mapping[str, Any], root: Path | None = None) -> ManifestRecord:
        """Inverse of ``to_json_dict``; a relative ``path`` is resolved against ``root``."""
        if "path" not in obj or "split" not in obj:
            raise ValueError(f"manifest line lacks 'path' or 'split': {dict(obj)!r}")
        path = Path(obj["path"])
        if root is not None and not path.is_absolute():
            path = (root / path).resolve()
        duration = obj.get("duration")
        extra = {k: v for k, v in obj.items() if k not in _FIXED_KEYS}
        return cls(
            path=path,
            identity=obj.get("identity"),
            duration=None if duration is None else float(duration),
            split=str(obj["split"]),
            extra=extra,
        )


def write_manifest(path: str | os.PathLike[str], records: Iterable[ManifestRecord]) -> Path:
    """Write ``records`` as JSONL to ``path`` atomically (temp file in the same folder + rename).

    Readers never see a half-written manifest, and an interrupted write leaves the old one.
    Returns the manifest path.
    """
    path = Path(path)
    root = path.parent.resolve()
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record.to_json_dict(root), ensure_ascii=False, sort_keys=False))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRecord]:
    """Read a JSONL manifest; relative paths are resolved against the manifest's folder.

    Blank lines are skipped; a malformed line raises ValueError naming the file and line number.
    """
    path = Path(path)
    root = path.parent.resolve()
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(ManifestRecord.from_json_dict(json.loads(line), root))
            except (json.JSONDecodeError, ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: bad manifest line: {exc}") from exc
    return records
