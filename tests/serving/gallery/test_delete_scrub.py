"""A deleted identity's template leaves every file of its gallery (issue 16), whatever the index kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.serving.gallery.conftest import MODEL, holds_vector, unit


def _files_holding(root: Path, vector: np.ndarray) -> list[str]:
    """The files under ``root`` holding ``vector``'s first 16 values as float32 (see holds_vector)."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and holds_vector(p.read_bytes(), vector[:16])
    )


@pytest.mark.sqlite_only  # SQLite's file and WAL
def test_a_pq_rerank_dead_slot_is_written_as_zeros_and_the_rest_reloads(open_gallery, rng, tmp_path):
    gallery = open_gallery(flat_max=1000)
    vectors = unit(rng, 1200)
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(vectors)), model=MODEL)
    gallery.snapshot()
    assert gallery.index_info().kind == "pq-rerank"
    # A one-sample template is its (unit) sample: it is in the store and in the snapshot.
    needle = vectors[7]
    held = _files_holding(tmp_path / "g", needle)
    assert any(p.startswith("store.sqlite3") for p in held) and any(p.startswith("index/index-") for p in held), held

    gallery.delete("id7")
    assert _files_holding(tmp_path / "g", needle) == []  # the snapshot went with the delete
    gallery.snapshot()
    info = gallery.index_info()
    assert info.params["dead"] == 1  # not compacted: the slot is still there, in memory
    assert _files_holding(tmp_path / "g", needle) == []  # but its vector was written as zeros
    # The neighbours of the dead slot (and every other row) reload intact from that snapshot.
    gallery.close()
    reopened = open_gallery(flat_max=1000)
    assert reopened.index_info().loaded_from == "snapshot + 0 replayed changes"
    assert reopened.verify_consistency().ok and len(reopened) == 1199
    assert [m.identity for m in reopened.search(vectors[8], 1, model=MODEL)] == ["id8"]
    assert _files_holding(tmp_path / "g", needle) == []


@pytest.mark.sqlite_only  # SQLite's file and WAL
def test_a_delete_checkpoints_the_wal_to_zero_bytes(open_gallery, rng, tmp_path):
    gallery = open_gallery()
    vectors = unit(rng, 5)
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(vectors)), model=MODEL)
    wal = tmp_path / "g" / "store.sqlite3-wal"
    assert wal.stat().st_size > 0
    gallery.delete("id2")
    assert wal.stat().st_size == 0
    assert _files_holding(tmp_path / "g", vectors[2]) == []
    assert "store.sqlite3" in _files_holding(tmp_path / "g", vectors[3])  # the scan does find what is there
