"""Channel effects: band limits, SNR, determinism, presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data import channel_effects as ce

SR = 16000


def _speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Broadband test signal (harmonics + noise bursts) with a 0.3 peak: headroom for effects."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * 140 * h * t) / h for h in range(1, 40))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.3 * rng.standard_normal(t.size)
    return 0.3 * x / np.max(np.abs(x))


def _band_energy_fraction(x: np.ndarray, lo: float, hi: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / SR)
    return float(power[(f >= lo) & (f < hi)].sum() / power.sum())


@pytest.fixture()
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(path, _speechlike(), SR, subtype="PCM_16")
    return path


@pytest.mark.parametrize("name", ["telephone", "telephone+noise"])
def test_telephone_band_has_little_energy_above_4k(wav: Path, tmp_path: Path, name: str) -> None:
    x, _ = ce.read_wav(wav)
    assert _band_energy_fraction(x, 4000, SR / 2) > 0.05  # the input is broadband
    y, sr = ce.read_wav(ce.apply_effect(wav, tmp_path / "out.wav", name, seed=1))
    assert sr == SR and y.size == x.size
    assert _band_energy_fraction(y, 4000, SR / 2) < 1e-3
    assert _band_energy_fraction(y, 0, 250) < 0.02  # and the 300 Hz high-pass acts


@pytest.mark.parametrize("color", ce.NOISE_COLORS)
@pytest.mark.parametrize("snr", [5.0, 10.0, 20.0])
def test_noise_snr_is_within_one_db(wav: Path, tmp_path: Path, color: str, snr: float) -> None:
    effect = ce.ChannelEffect("n", noise_snr_db=snr, noise_color=color)
    x, _ = ce.read_wav(wav)
    y, _ = ce.read_wav(ce.apply_effect(wav, tmp_path / "out.wav", effect, seed=3))
    measured = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
    assert abs(measured - snr) < 1.0


def test_noise_colors_have_their_slopes() -> None:
    rng = np.random.default_rng(0)
    noise = {c: ce.colored_noise(SR * 4, c, rng, SR) for c in ce.NOISE_COLORS}
    low = {c: _band_energy_fraction(x, 20, 500) for c, x in noise.items()}
    assert low["white"] < low["pink"] < low["brown"]
    assert all(np.sqrt(np.mean(x**2)) == pytest.approx(1.0) for x in noise.values())
    for c in ("pink", "brown"):  # no sub-audio rumble
        assert _band_energy_fraction(noise[c], 0, 19.9) < 1e-12


@pytest.mark.parametrize("name", sorted(set(ce.PRESETS) - {"clean"}))
def test_presets_change_the_signal_and_keep_length(name: str) -> None:
    x = _speechlike()
    y = ce.apply_effect_array(x, SR, name, seed=0)
    assert y.shape == x.shape and np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
    assert np.max(np.abs(y - x)) > 1e-3


def test_clean_is_identity_and_gain_scales() -> None:
    x = _speechlike()
    np.testing.assert_array_equal(ce.apply_effect_array(x, SR, "clean", seed=0), x)
    quiet = ce.apply_effect_array(x, SR, "quiet", seed=0)
    np.testing.assert_allclose(quiet, x * 0.1, atol=1e-12)


def test_deterministic_for_a_seed(wav: Path, tmp_path: Path) -> None:
    for name in ("telephone+noise", "reverb+noise"):
        a = ce.apply_effect(wav, tmp_path / "a.wav", name, seed=7).read_bytes()
        b = ce.apply_effect(wav, tmp_path / "b.wav", name, seed=7).read_bytes()
        c = ce.apply_effect(wav, tmp_path / "c.wav", name, seed=8).read_bytes()
        assert a == b and a != c


def test_unknown_preset_and_color() -> None:
    with pytest.raises(KeyError, match="presets"):
        ce.get_effect("underwater")
    with pytest.raises(ValueError, match="noise_color"):
        ce.ChannelEffect("x", noise_snr_db=3, noise_color="purple")


def test_missing_sox_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ce.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Debian package `sox`"):
        ce.apply_effect_array(_speechlike(), SR, "telephone", seed=0)
