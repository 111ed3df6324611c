"""Two galleries in different folders (two gateways' data folders) sharing one PostgreSQL gallery:
what one acknowledges the other serves, its index within the follow interval."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from serving.errors import AlreadyExists, Unavailable
from serving.gallery import Gallery, GalleryConfig
from tests.serving.gallery.conftest import DIM, MODEL, unit

INTERVAL_MS = 200
DELAY_S = 1.0  # stated bound for Identify on the other replica: the interval plus apply time, with slack for a busy CI


def _replica(folder: Path, dsn: str, **config) -> Gallery:
    settings = {"backend": "postgres", "dsn": dsn, "background": False, "follow_interval_ms": INTERVAL_MS, **config}
    return Gallery.open(folder / "speaker", modality="speaker", dim=DIM, model=MODEL, config=GalleryConfig(**settings))


@pytest.fixture
def replicas(tmp_path, postgres_dsn):
    opened: list[Gallery] = []

    def factory(name: str, **config) -> Gallery:
        opened.append(_replica(tmp_path / name, postgres_dsn, **config))
        return opened[-1]

    yield factory
    for gallery in opened:
        gallery.close()


def _until(check, timeout: float) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"not within {timeout} s"
        time.sleep(0.01)
    return time.monotonic() - start


def test_an_enrollment_on_one_replica_is_served_by_the_other_within_the_interval(replicas, rng):
    a, b = replicas("a"), replicas("b")
    vectors = unit(rng, 3)
    for i, v in enumerate(vectors):
        a.enroll(f"id{i}", v, model=MODEL)
    # Verify reads the store: at once.
    assert abs(b.score("id1", vectors[1], model=MODEL) - 1.0) < 1e-5
    # Identify searches B's own index: once B has read the change log.
    took = _until(lambda: [m.identity for m in b.search(vectors[2], 1, model=MODEL)] == ["id2"], DELAY_S)
    assert took < DELAY_S and len(b) == 3
    a.delete("id2")
    # At once: a hit is named from the store, and a deleted identity has no name there any more.
    assert "id2" not in {m.identity for m in b.search(vectors[2], 3, model=MODEL)}
    _until(lambda: len(b) == 2, DELAY_S)  # B's index drops it within the interval
    assert b.verify_consistency().ok and a.verify_consistency().ok


def test_a_replica_writing_after_another_misses_none_of_its_changes(replicas, rng):
    # No polling here (an hour): only the catch-up of B's own write brings A's change in.
    a, b = replicas("a", follow_interval_ms=3_600_000), replicas("b", follow_interval_ms=3_600_000)
    x, y = unit(rng, 2)
    a.enroll("x", x, model=MODEL)
    b.enroll("y", y, model=MODEL)
    assert [m.identity for m in b.search(x, 1, model=MODEL)] == ["x"]
    assert b.verify_consistency().ok and len(b) == 2


def test_concurrent_creates_of_one_id_from_both_replicas_leave_one(replicas, rng):
    a, b = replicas("a"), replicas("b")
    outcomes: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def create(name: str, gallery: Gallery, vector) -> None:
        barrier.wait()
        try:
            outcomes[name] = gallery.enroll("same", vector, model=MODEL)
        except AlreadyExists as exc:
            outcomes[name] = exc

    va, vb = unit(rng, 2)
    threads = [threading.Thread(target=create, args=(n, g, v)) for n, g, v in (("a", a, va), ("b", b, vb))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(o).__name__ for o in outcomes.values()) == ["AlreadyExists", "EnrollResult"]
    winner = va if not isinstance(outcomes["a"], AlreadyExists) else vb
    for gallery in (a, b):
        _until(lambda g=gallery: len(g) == 1, DELAY_S)
        assert abs(gallery.score("same", winner, model=MODEL) - 1.0) < 1e-5
        assert gallery.verify_consistency().ok


def test_an_unreachable_database_is_a_clear_error_at_open(tmp_path):
    from tests.postgres import free_port

    dsn = f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres"  # nothing listens there
    with pytest.raises(Unavailable, match="cannot connect to the gallery database"):
        _replica(tmp_path / "a", dsn)
