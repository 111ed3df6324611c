"""Shared helpers for the gallery tests: small dims, synthetic unit vectors, gallery factories."""

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


@pytest.fixture
def open_gallery(tmp_path: Path) -> Iterator[Callable[..., Gallery]]:
    """``open_gallery(name="g", model=MODEL, **config)`` → an open gallery, closed after the test."""
    opened: list[Gallery] = []

    def factory(
        name: str = "g", model: ModelBinding | None = MODEL, dim: int = DIM, modality: str = "speaker", **config
    ) -> Gallery:
        config.setdefault("background", False)
        gallery = Gallery.open(tmp_path / name, modality=modality, dim=dim, model=model, config=GalleryConfig(**config))
        opened.append(gallery)
        return gallery

    yield factory
    for gallery in opened:
        gallery.close()
