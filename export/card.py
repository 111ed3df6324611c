"""File digests for model cards' provenance. The card itself is ``contracts/card.py``'s: every
exporter and importer builds a typed card and writes it with ``contracts.card.write_card``."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
