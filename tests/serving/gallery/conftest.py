"""Shared helpers for the gallery tests: small dims, synthetic unit vectors, gallery factories.

Every test that opens galleries through ``open_gallery`` runs against both store backends
(``[sqlite]`` and ``[postgres]``: a fresh database on the session's PostgreSQL server), except
those marked ``sqlite_only`` (they look at SQLite's own files: WAL, pages, the backup API).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from serving.gallery import Gallery, GalleryConfig, ModelBinding

DIM = 64
MODEL = ModelBinding("test-model", 3)


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def noisy(rng: np.random.Generator, sources: np.ndarray, lo: float = 0.6, hi: float = 0.8) -> np.ndarray:
    """Identification probes: unit vectors at a cosine in [lo, hi] to each source row."""
    noise = rng.standard_normal(sources.shape).astype(np.float32)
    noise -= (noise * sources).sum(axis=1, keepdims=True) * sources
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cos = rng.uniform(lo, hi, (len(sources), 1)).astype(np.float32)
    return (cos * sources + np.sqrt(1 - cos**2) * noise).astype(np.float32)


TOLERANCE = 1e-4  # a stored template is its sample renormalised (and an Embed may batch differently)


def holds_vector(data: bytes, values: np.ndarray) -> bool:
    """True when ``data`` holds ``values`` as consecutive little-endian float32s, at any byte offset,
    each within TOLERANCE (16 values of a unit 256-d embedding match nothing else by chance)."""
    for offset in range(4):
        usable = (len(data) - offset) // 4
        floats = np.frombuffer(data, "<f4", count=usable, offset=offset) if usable >= len(values) else None
        if floats is None:
            continue
        with np.errstate(invalid="ignore"):
            starts = np.flatnonzero(np.abs(floats[: usable - len(values) + 1] - values[0]) < TOLERANCE)
            for start in starts:
                if np.all(np.abs(floats[start : start + len(values)] - values) < TOLERANCE):
                    return True
    return False


def crash(gallery: Gallery) -> None:
    """Drop a gallery the way a killed process would: no final snapshot, no checkpoint."""
    gallery._keeper.stop()
    gallery._closed = True
    for conn in gallery._store._all:
        conn.close()
    gallery._store._closed = True
    gallery._lock.release()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("backend", ["sqlite"] if sqlite_only else ["sqlite", "postgres"])


@pytest.fixture
def store_config(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """The GalleryConfig fields that select this test's store backend."""
    if backend == "sqlite":
        return {}
    return {"backend": "postgres", "dsn": request.getfixturevalue("postgres_dsn")}


@pytest.fixture
def open_gallery(tmp_path: Path, store_config: dict[str, str]) -> Iterator[Callable[..., Gallery]]:
    """``open_gallery(name="g", model=MODEL, **config)`` → an open gallery, closed after the test."""
    opened: list[Gallery] = []

    def factory(
        name: str = "g", model: ModelBinding | None = MODEL, dim: int = DIM, modality: str = "speaker", **config
    ) -> Gallery:
        config.setdefault("background", False)
        config = {**store_config, **config}
        gallery = Gallery.open(tmp_path / name, modality=modality, dim=dim, model=model, config=GalleryConfig(**config))
        opened.append(gallery)
        return gallery

    yield factory
    for gallery in opened:
        gallery.close()
