"""AudioStore: loading (mono, resampling), caching, random crops and looping of short clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from training.data.audio_store import AudioStore
from training.data.manifest import ManifestRecord


def _record(path: Path, x: np.ndarray, rate: int) -> ManifestRecord:
    sf.write(path, x, rate, subtype="FLOAT")
    return ManifestRecord(path=path, identity="spk", duration=len(x) / rate, split="train")


@pytest.fixture()
def clips(tmp_path: Path) -> tuple[list[ManifestRecord], list[np.ndarray]]:
    """Three clips: 1 s at 16 kHz, 0.25 s at 16 kHz, 0.5 s stereo at 8 kHz."""
    rng = np.random.default_rng(0)
    long = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    short = (0.1 * rng.standard_normal(4000)).astype(np.float32)
    stereo = (0.1 * rng.standard_normal((4000, 2))).astype(np.float32)
    records = [
        _record(tmp_path / "long.wav", long, 16000),
        _record(tmp_path / "short.wav", short, 16000),
        _record(tmp_path / "stereo8k.wav", stereo, 8000),
    ]
    expected = [long, short, resample_poly(stereo.mean(axis=1).astype(np.float64), 2, 1)]
    return records, expected


def _find(haystack: np.ndarray, needle: np.ndarray) -> list[int]:
    """Offsets where ``needle`` occurs in ``haystack`` exactly."""
    starts = np.flatnonzero(haystack[: haystack.size - needle.size + 1] == needle[0])
    return [int(s) for s in starts if np.array_equal(haystack[s : s + needle.size], needle)]


def test_load_is_mono_float32_at_the_store_rate(clips) -> None:
    records, expected = clips
    store = AudioStore(records)
    for i, want in enumerate(expected):
        x = store.load(i)
        assert x.dtype == np.float32 and x.ndim == 1
        np.testing.assert_allclose(x, want, atol=1e-6)
        assert store.num_samples(i) == x.size
    assert store.load(2).size == 8000  # 0.5 s at 8 kHz became 0.5 s at 16 kHz
    assert AudioStore(records, cache=False).num_samples(2) == 8000  # from the header alone
    assert store.index_of(records[1].path) == 1
    with pytest.raises(KeyError):
        store.index_of("/nowhere.wav")


def test_crops_are_windows_of_the_utterance_covering_all_of_it(clips) -> None:
    records, expected = clips
    store = AudioStore(records)
    rng = np.random.default_rng(1)
    starts = []
    for _ in range(200):
        crop = store.crop(0, 0.5, rng)
        assert crop.shape == (8000,) and crop.dtype == np.float32
        found = _find(expected[0], crop)
        assert len(found) == 1
        starts.append(found[0])
    # Uniform over the 8001 possible starts: both ends are reached.
    assert min(starts) < 400 and max(starts) > 8000 - 400
    assert store.crop_samples(2.0) == 32000


def test_short_utterances_are_looped_from_a_random_offset(clips) -> None:
    records, expected = clips
    store = AudioStore(records)
    x = expected[1]  # 4000 samples, crop of 10000
    rng = np.random.default_rng(2)
    offsets = set()
    for _ in range(20):
        crop = store.crop(1, 10000 / 16000, rng)
        assert crop.shape == (10000,)
        offset = _find(np.concatenate([x, x]), crop[:4000])
        assert len(offset) == 1
        np.testing.assert_array_equal(crop, x[(offset[0] + np.arange(10000)) % x.size])
        offsets.add(offset[0])
    assert len(offsets) > 10


def test_crops_are_deterministic_and_equal_with_or_without_cache(clips) -> None:
    records, _ = clips
    cached, uncached = AudioStore(records), AudioStore(records, cache=False)
    for i in range(3):
        for seconds in (0.1, 0.3, 1.5):
            a = cached.crop(i, seconds, np.random.default_rng([i, 5]))
            b = uncached.crop(i, seconds, np.random.default_rng([i, 5]))
            np.testing.assert_array_equal(a, b)
    assert not uncached._audio  # nothing was kept in memory
    c1 = cached.crop(0, 0.2, np.random.default_rng(9))
    c2 = cached.crop(0, 0.2, np.random.default_rng(10))
    assert not np.array_equal(c1, c2)
    # A crop is a copy: writing to it leaves the cached audio intact.
    c1[:] = 0
    assert np.any(cached.load(0) != 0)


def test_preload_and_errors(tmp_path: Path, clips) -> None:
    records, _ = clips
    store = AudioStore(records)
    store.preload()
    assert sorted(store._audio) == [0, 1, 2]
    empty = _record(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="no audio"):
        AudioStore([empty]).load(0)
    with pytest.raises(ValueError):
        store.crop(0, 0.0, np.random.default_rng(0))
