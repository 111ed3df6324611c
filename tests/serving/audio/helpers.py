"""Test helpers: espeak-ng speech, padding, in-memory encoding."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serving.audio.resample import resample


def espeak(text: str, directory: Path, name: str) -> np.ndarray:
    """espeak-ng speech as float32 [n] at 16 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = directory / f"{name}.wav"
    subprocess.run(["espeak-ng", "-w", str(out), text], check=True, capture_output=True)
    x, sr = sf.read(out, dtype="float32")
    return resample(x, sr, 16_000)


def pad(x: np.ndarray, seconds: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Silence (or white noise of RMS `noise`) of `seconds` on each side of 16 kHz audio."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16_000)
    side = [(noise * rng.standard_normal(n)).astype(np.float32) for _ in range(2)]
    return np.concatenate([side[0], x, side[1]]).astype(np.float32)


def encode(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()
