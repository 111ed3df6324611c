"""On-the-fly augmentation: length kept, determinism, and each branch doing what it says."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.augment import AugmentDraw, Augmenter, synthetic_rir

SR = 16000


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated harmonics plus a little noise: energy across the band."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = sum(np.sin(2 * np.pi * 150 * k * t + rng.uniform(0, 6)) / k for k in range(1, 30))
    return (0.1 * x * (1.2 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _band_power(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / SR)
    return float(spectrum[(f >= lo) & (f < hi)].mean())


def test_every_branch_keeps_length_and_changes_the_signal() -> None:
    x = _speechlike(8000)
    everything = Augmenter(noise_p=1, reverb_p=1, speed_p=1, bandpass_p=1)
    for seed in range(10):
        for n in (8000, 1234):
            y = everything(x[:n], np.random.default_rng(seed))
            assert y.shape == (n,) and y.dtype == np.float32 and np.all(np.isfinite(y))
            assert np.max(np.abs(y - x[:n])) > 1e-3


def test_deterministic_given_the_generator() -> None:
    x = _speechlike(8000)
    aug = Augmenter(noise_p=0.5, reverb_p=0.5, speed_p=0.5, bandpass_p=0.5)
    outs = [aug(x, np.random.default_rng(seed)) for seed in (3, 3, 4)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_none_is_the_identity() -> None:
    x = _speechlike(4000)
    aug = Augmenter.none()
    assert not aug.enabled
    np.testing.assert_array_equal(aug(x, np.random.default_rng(0)), x)


def test_noise_snr_is_the_drawn_one() -> None:
    x = _speechlike(32000)
    aug = Augmenter(noise_p=1, reverb_p=0, speed_p=0, bandpass_p=0, noise_snr_db=(5, 20))
    rng = np.random.default_rng(7)
    colors = set()
    for _ in range(30):
        draw = aug.draw(rng)
        assert 5 <= draw.snr_db <= 20 and draw.speed is draw.rt60_s is draw.band_hz is None
        y = aug.apply(x, draw)
        noise = y.astype(np.float64) - x
        snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
        assert snr == pytest.approx(draw.snr_db, abs=1.0)
        colors.add(draw.noise_color)
    assert colors == {"white", "pink", "brown"}


def test_bandpass_removes_energy_outside_the_band() -> None:
    x = np.random.default_rng(0).standard_normal(32000).astype(np.float32)
    aug = Augmenter(
        noise_p=0, reverb_p=0, speed_p=0, bandpass_p=1, bandpass_low_hz=(300, 300), bandpass_high_hz=(3000, 3000)
    )
    y = aug(x, np.random.default_rng(1))
    inside = _band_power(y, 600, 2500)
    assert inside == pytest.approx(_band_power(x, 600, 2500), rel=0.2)  # passband ≈ untouched
    for lo, hi in ((0, 100), (6000, 8000)):
        assert 10 * np.log10(_band_power(y, lo, hi) / inside) < -20


def test_reverb_adds_a_tail_that_grows_with_rt60() -> None:
    burst = np.zeros(16000, dtype=np.float32)
    burst[:800] = np.random.default_rng(0).standard_normal(800)  # 50 ms, then silence

    def tail_energy(y: np.ndarray, start_s: float, end_s: float) -> float:
        return float(np.sum(y[int(start_s * SR) : int(end_s * SR)] ** 2) / np.sum(y**2))

    aug = Augmenter(noise_p=0, speed_p=0, bandpass_p=0, reverb_p=1, drr_db=(0, 0))
    short = aug.apply(burst, AugmentDraw(rt60_s=0.2, drr_db=0.0, seed=1))
    long = aug.apply(burst, AugmentDraw(rt60_s=0.8, drr_db=0.0, seed=1))
    assert tail_energy(burst, 0.1, 1.0) == 0
    for y in (short, long):
        windows = [tail_energy(y, s, s + 0.05) for s in (0.06, 0.11, 0.16)]
        assert windows[0] > 1e-3 and windows[0] > windows[1] > windows[2]  # decaying tail
    assert tail_energy(long, 0.3, 0.6) > 30 * tail_energy(short, 0.3, 0.6)
    # The RIR itself: unit energy, 60 dB down by RT60.
    rir = synthetic_rir(0.5, 0.0, SR, np.random.default_rng(2))
    assert np.sum(rir**2) == pytest.approx(1.0)
    early, late = np.sum(rir[1:800] ** 2), np.sum(rir[7200:8000] ** 2)
    assert 10 * np.log10(late / early) < -40


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_moves_frequencies_and_keeps_length(speed: float) -> None:
    x = np.sin(2 * np.pi * 1000 * np.arange(16000) / SR).astype(np.float32)
    aug = Augmenter(noise_p=0, reverb_p=0, bandpass_p=0, speed_p=1, speeds=(speed,))
    y = aug(x, np.random.default_rng(0))
    assert y.shape == x.shape
    peak = np.fft.rfftfreq(y.size, 1 / SR)[np.argmax(np.abs(np.fft.rfft(y)))]
    assert peak == pytest.approx(1000 * speed, abs=5)


def test_branch_rates_follow_their_probabilities() -> None:
    aug = Augmenter()  # noise 0.6, reverb 0.3, speed 0.2, band-pass 0.2
    rng = np.random.default_rng(0)
    draws = [aug.draw(rng) for _ in range(3000)]
    rates = [np.mean([getattr(d, f) is not None for d in draws]) for f in ("snr_db", "rt60_s", "speed", "band_hz")]
    np.testing.assert_allclose(rates, [0.6, 0.3, 0.2, 0.2], atol=0.035)


def test_config_section_is_loaded_strictly() -> None:
    aug = Augmenter.from_config({"noise_p": 1.0, "speeds": [0.95, 1.05]}, sample_rate=22050)
    assert aug.speeds == (0.95, 1.05) and aug.noise_p == 1.0 and aug.sample_rate == 22050
    assert hash(aug)  # lists frozen into tuples
    assert not Augmenter.from_config(None).enabled
    assert Augmenter.from_config(False, sample_rate=8000).sample_rate == 8000
    assert Augmenter.from_config(True) == Augmenter()
    with pytest.raises(ValueError, match="unknown augment keys"):
        Augmenter.from_config({"noise_probability": 0.5})
    with pytest.raises(ValueError, match="noise_p"):
        Augmenter(noise_p=1.5)
    with pytest.raises(ValueError, match="Nyquist"):
        Augmenter(sample_rate=8000)  # default high cut-offs reach 7 kHz
    with pytest.raises(ValueError, match="noise_colors"):
        Augmenter(noise_colors=("purple",))
