"""Model cards: ``card.json``, everything the gateway knows about a model version (DESIGN §2).

The schema (version 1), as the gateway's reader (``serving/models/card.py``) expects it:

- ``name``, ``version`` (int), ``modality`` (speaker | face | sound | vad | face-detector),
  ``file`` (``model.onnx``), ``created_at`` (ISO 8601 UTC);
- ``inputs`` / ``outputs``: ``[{name, dtype, shape, role}]``; ``-1`` marks a dynamic axis;
  roles: ``waveform`` [B, T] float32, ``lengths`` [B] int64 (valid samples per row, so that a
  padded batch gives the same embeddings as single requests), ``embedding`` [B, D];
- ``audio``: ``{sample_rate, channels}`` for waveform models;
- ``embedding``: ``{output, dim, normalized, metric}``;
- ``shape_ranges``: min / opt / max per dynamic axis (Triton/TensorRT profiles, serving limits);
- ``serving``: batching hints (``max_batch_size``, ``preferred_batch_sizes``, ``max_queue_delay_us``);
- ``provenance``: recipe + config hash + data manifest hash, or the third-party package,
  its version, licence and the sha256 of the imported file;
- ``parity``: a list of parity checks (see ``export/parity.py``);
- ``calibration`` (embedding models): dev trial list name and counts, EER and its threshold,
  minDCF per P_target and thresholds per false-accept rate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

CARD_SCHEMA = 1
CARD_FILE = "card.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor(name: str, dtype: str, shape: list[int], role: str) -> dict[str, Any]:
    """One entry of ``inputs`` / ``outputs``."""
    return {"name": name, "dtype": dtype, "shape": shape, "role": role}


def new_card(name: str, version: int, modality: str, **sections: Any) -> dict[str, Any]:
    """A card dict with the fixed header; ``sections`` are the schema's other keys."""
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "name": name,
        "version": int(version),
        "modality": modality,
        "file": "model.onnx",
        "created_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    card.update(sections)
    return card


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temp file + fsync + rename so that readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_card(version_dir: Path, card: dict[str, Any]) -> Path:
    path = version_dir / CARD_FILE
    write_json_atomic(path, card)
    return path


def read_card(version_dir: Path) -> dict[str, Any]:
    with open(version_dir / CARD_FILE, encoding="utf-8") as f:
        return json.load(f)
