"""Random-access audio for training samplers: load, resample, cache and crop utterances.

An ``AudioStore`` wraps a list of manifest records; samplers address utterances by their
position in that list. Audio comes back as mono float32 at the store's sample rate. Crops are
drawn from a caller's ``numpy.random.Generator`` so that a batch is a pure function of its seed
(training.data.speaker_batches).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from math import gcd
from pathlib import Path

import numpy as np

from training.data.manifest import ManifestRecord


class AudioStore:
    """Mono float32 audio of ``records`` at ``sample_rate`` Hz, optionally cached in memory.

    records: the utterances; index ``i`` of every method is a position in this sequence.
    sample_rate: the rate audio is returned at; other rates are resampled with
        ``scipy.signal.resample_poly`` (polyphase, exact rational ratio).
    cache: keep every loaded utterance in memory. Right for small corpora (a synthetic corpus
        of 200 speakers × 20 utterances × 4 s is ≈ 1 GB of float32); for VoxCeleb-sized data
        pass False, and crops of files already at ``sample_rate`` are read from disk without
        loading the whole file. Call ``preload()`` before starting DataLoader workers so that
        forked workers share one cache copy-on-write instead of filling one each.

    Files are read with soundfile (libsndfile): WAV, FLAC, OGG… but not AAC/m4a; convert
    VoxCeleb2's m4a to wav first. Multi-channel audio is averaged to mono.
    """

    def __init__(self, records: Sequence[ManifestRecord], sample_rate: int = 16000, cache: bool = True) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.records = records
        self.sample_rate = int(sample_rate)
        self.cache = cache
        self._audio: dict[int, np.ndarray] = {}
        self._frames: dict[int, tuple[int, int]] = {}  # i -> (frames, native rate)
        self._positions: dict[Path, int] | None = None

    def __len__(self) -> int:
        return len(self.records)

    @classmethod
    def from_arrays(
        cls, records: Sequence[ManifestRecord], arrays: Sequence[np.ndarray], sample_rate: int = 16000
    ) -> AudioStore:
        """A store whose audio is already in memory (generated signals, benchmarks): record i's
        samples are ``arrays[i]`` (float32 [n] at ``sample_rate``); nothing is read from disk."""
        if len(records) != len(arrays):
            raise ValueError(f"{len(records)} records but {len(arrays)} arrays")
        store = cls(records, sample_rate, cache=True)
        for i, x in enumerate(arrays):
            x = np.ascontiguousarray(x, dtype=np.float32)
            x.setflags(write=False)
            store._audio[i] = x
        return store

    def index_of(self, path: str | os.PathLike[str]) -> int:
        """Position of the record whose path is ``path`` (KeyError if none)."""
        if self._positions is None:  # built on first use, not in the constructor
            self._positions = {Path(r.path): i for i, r in enumerate(self.records)}
        try:
            return self._positions[Path(path)]
        except KeyError:
            raise KeyError(f"{path} is not among this AudioStore's records") from None

    def crop_samples(self, seconds: float) -> int:
        """Samples in a crop of ``seconds`` at the store's rate (rounded, at least 1)."""
        if seconds <= 0:
            raise ValueError(f"crop length must be positive, got {seconds} s")
        return max(1, round(seconds * self.sample_rate))

    def load(self, index: int) -> np.ndarray:
        """The whole utterance ``index`` as float32 [samples] at ``sample_rate``."""
        cached = self._audio.get(index)
        if cached is not None:
            return cached
        import soundfile as sf

        data, rate = sf.read(str(self.records[index].path), dtype="float32", always_2d=True)
        x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        x = np.ascontiguousarray(self._resample(x, int(rate)), dtype=np.float32)
        if x.size == 0:
            raise ValueError(f"{self.records[index].path} holds no audio")
        if self.cache:
            x.setflags(write=False)  # shared by every crop; a caller must not modify it
            self._audio[index] = x
        return x

    def preload(self, indices: Sequence[int] | None = None) -> None:
        """Load ``indices`` (default: all records) into the cache; no-op without a cache."""
        if self.cache:
            for i in range(len(self.records)) if indices is None else indices:
                self.load(i)

    def num_samples(self, index: int) -> int:
        """Length of utterance ``index`` in samples at ``sample_rate``, from the header."""
        if index in self._audio:
            return int(self._audio[index].size)
        frames, rate = self._info(index)
        if rate == self.sample_rate:
            return frames
        up, down = self._ratio(rate)
        return -(-frames * up // down)  # resample_poly's output length: ceil(n·up/down)

    def crop(self, index: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
        """A random crop of utterance ``index``: float32 [round(seconds·sample_rate)].

        The start is uniform over every position where the crop fits. An utterance shorter
        than the crop is looped (tiled end to start) from a uniform random offset, so that the
        crop holds only speech of that utterance and never padding silence, which an encoder
        could learn to use as a cue. The same rng state gives the same crop whether or not the
        store caches audio.
        """
        n = self.crop_samples(seconds)
        # Without a cache, a crop of a file at the store's rate is read alone from disk.
        partial = not self.cache and index not in self._audio and self._info(index)[1] == self.sample_rate
        x = None if partial else self.load(index)
        length = self.num_samples(index) if x is None else x.size
        if length >= n:
            start = int(rng.integers(0, length - n + 1))
            return self._read_span(index, start, n) if x is None else x[start : start + n].copy()
        x = self.load(index) if x is None else x
        offset = int(rng.integers(0, x.size))
        return x[(offset + np.arange(n)) % x.size].astype(np.float32, copy=False)

    def _read_span(self, index: int, start: int, n: int) -> np.ndarray:
        """Samples [start, start+n) of a file already at ``sample_rate``, read from disk."""
        import soundfile as sf

        data, _ = sf.read(str(self.records[index].path), start=start, frames=n, dtype="float32", always_2d=True)
        x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if x.size != n:
            raise ValueError(
                f"{self.records[index].path}: header promised {start + n} frames, read only {start + x.size}"
            )
        return np.ascontiguousarray(x, dtype=np.float32)

    def _info(self, index: int) -> tuple[int, int]:
        cached = self._frames.get(index)
        if cached is None:
            import soundfile as sf

            info = sf.info(str(self.records[index].path))
            cached = self._frames[index] = (int(info.frames), int(info.samplerate))
        return cached

    def _ratio(self, rate: int) -> tuple[int, int]:
        g = gcd(self.sample_rate, rate)
        return self.sample_rate // g, rate // g

    def _resample(self, x: np.ndarray, rate: int) -> np.ndarray:
        if rate == self.sample_rate:
            return x
        from scipy.signal import resample_poly

        up, down = self._ratio(rate)
        return resample_poly(x.astype(np.float64), up, down)
