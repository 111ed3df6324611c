"""resample: soxr HQ keeps a tone's frequency and amplitude."""

from __future__ import annotations

import numpy as np
import pytest

from serving.audio.resample import resample


def peak_frequency(x: np.ndarray, sr: int) -> float:
    """Frequency of the strongest bin of a Hann-windowed spectrum, parabola-interpolated (Hz)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / len(x)


@pytest.mark.parametrize(("sr_in", "sr_out"), [(44_100, 16_000), (8_000, 16_000), (48_000, 16_000)])
def test_sine_keeps_frequency_and_amplitude(sr_in: int, sr_out: int) -> None:
    t = np.arange(sr_in) / sr_in  # 1 s
    x = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    y = resample(x, sr_in, sr_out)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == pytest.approx(sr_out, abs=1)
    core = y[sr_out // 10 : -sr_out // 10]  # away from the filter's edge transients
    assert peak_frequency(core, sr_out) == pytest.approx(1000.0, abs=0.5)
    assert np.sqrt(np.mean(core**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert np.max(np.abs(core)) == pytest.approx(0.5, rel=0.01)


def test_identity_and_edges() -> None:
    x = np.ones(10, np.float32)
    assert resample(x, 16_000, 16_000) is x
    assert resample(np.zeros(0, np.float32), 44_100, 16_000).shape == (0,)
    with pytest.raises(ValueError):
        resample(np.zeros((2, 2), np.float32), 8_000, 16_000)
