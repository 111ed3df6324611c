"""Sample-rate conversion with soxr (the "soxr_hq" that librosa uses by default)."""

from __future__ import annotations

import numpy as np
import soxr


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono audio.

    x: float32 [n] at sr_in Hz → float32 [round(n * sr_out / sr_in)] at sr_out Hz.
    Identity (the same array) when the rates are equal. soxr's "HQ" quality matches librosa's
    default, so embeddings computed here match those computed by librosa-based training code.
    """
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} → {sr_out}")
    if x.ndim != 1:
        raise ValueError(f"expected mono audio [n], got shape {x.shape}")
    if sr_in == sr_out:
        return x
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)
