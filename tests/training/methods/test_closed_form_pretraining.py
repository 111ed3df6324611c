"""Closed-form pre-training (METHODS §4): the 1/f^β property and the formula class sets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.methods.closed_form_pretraining import (
    D1,
    D2,
    D3,
    DALL,
    DRIFTS,
    ENVELOPES,
    FORMULA_DATASETS,
    band_gain,
    band_noise,
    build_class_set,
    power_law_noise,
    spectral_slope,
)

SR = 16000
# 2 s at 16 kHz through 1024-point Welch segments: ~60 averaged periodograms, so each bin's log
# power has a std of ~0.1 and the slope fitted over ~440 bins a std of ~0.006 — the ±0.05
# tolerance is ~8σ. The fit starts at 200 Hz, 13 bins above DC, where the Hann main lobe no
# longer smears a 1/f² spectrum, and stops at 7 kHz, short of Nyquist.
SLOPE = dict(sample_rate=SR, f_lo=200.0, f_hi=7000.0, nperseg=1024)


@pytest.mark.parametrize("beta", np.linspace(-2.0, 2.0, 9).tolist())
def test_fitted_log_log_slope_is_minus_beta(beta: float) -> None:
    for seed in range(3):
        x = power_law_noise(2 * SR, beta, np.random.default_rng(seed), SR)
        assert x.dtype == np.float32 and x.shape == (2 * SR,)
        assert np.sqrt(np.mean(x.astype(float) ** 2)) == pytest.approx(1.0, rel=1e-4)
        assert abs(float(np.mean(x))) < 1e-3  # DC bin is zero
        assert spectral_slope(x, **SLOPE) == pytest.approx(-beta, abs=0.05)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(beta=st.floats(-2.0, 2.0), seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([22050, 44100]))
def test_slope_property_at_other_rates(beta: float, seed: int, rate: int) -> None:
    x = power_law_noise(rate, beta, np.random.default_rng(seed), rate)  # 1 s clips
    slope = spectral_slope(x, rate, f_lo=25 * rate / 2048, f_hi=0.45 * rate, nperseg=2048)
    assert slope == pytest.approx(-beta, abs=0.05)


def test_slope_detects_a_wrong_exponent() -> None:
    # The test above must be able to fail: noise with β = 1.1 is not β = 1.
    x = power_law_noise(2 * SR, 1.1, np.random.default_rng(0), SR)
    assert abs(spectral_slope(x, **SLOPE) + 1.0) > 0.05
    with pytest.raises(ValueError, match="spectral bins"):
        spectral_slope(x, SR, 100.0, 110.0)


def test_class_counts_names_and_registry() -> None:
    assert FORMULA_DATASETS == {"d1": D1, "d2": D2, "d3": D3, "all": DALL}
    counts = {key: cls().n_classes for key, cls in FORMULA_DATASETS.items()}
    assert counts == {"d1": 16, "d2": 24, "d3": 16, "all": 56}
    for cls in FORMULA_DATASETS.values():
        names = cls().class_names
        assert len(names) == len(set(names)) == cls().n_classes
    assert DALL().class_names == D1().class_names + D2().class_names + D3().class_names
    assert D1().class_names[0] == "d1/beta-1.875" and D3().class_names[5] == "d3/rise/bursts"
    assert D2(n_betas=2, n_bands=3).n_classes == 6 and D1(n_betas=8).n_classes == 8
    assert set(DRIFTS) == {"steady", "rise", "fall", "swing"}
    assert set(ENVELOPES) == {"flat", "bursts", "am", "swell"}
    with pytest.raises(IndexError):
        D1().sample(16, np.random.default_rng(0), 100, SR)
    assert D3(drifts=["rise"], envelopes=["am"]) == D3(drifts=("rise",), envelopes=("am",))
    assert hash(D1(beta_range=[-1, 1])) == hash(D1(beta_range=(-1, 1)))  # YAML lists
    with pytest.raises(ValueError, match="tremolo"):
        D3(envelopes=("flat", "tremolo"))


def test_build_class_set_is_what_a_recipe_section_asks_for() -> None:
    assert build_class_set("d2", n_betas=2, n_bands=3) == D2(n_betas=2, n_bands=3)
    assert build_class_set() == DALL()
    with pytest.raises(ValueError, match="unknown formula dataset 'd4'"):
        build_class_set("d4")
    with pytest.raises(TypeError, match="n_beta"):
        build_class_set("d1", n_beta=4)  # a misspelt constructor argument


def test_d1_classes_tile_the_beta_range() -> None:
    d1 = D1()
    assert np.allclose(d1.edges, np.linspace(-2, 2, 17))
    for c in (0, 5, 15):
        for seed in range(3):
            x = d1.sample(c, np.random.default_rng(seed), 2 * SR, SR)
            slope = spectral_slope(x, **SLOPE)
            assert -d1.edges[c + 1] - 0.05 <= slope <= -d1.edges[c] + 0.05


def test_every_class_at_any_rate_and_length() -> None:
    dall = DALL()
    for rate, n in ((8000, 8000), (22050, 1000), (44100, 4410), (16000, 7), (16000, 1)):
        for c in range(0, dall.n_classes, 5):
            if rate == 8000 and dall.class_names[c].startswith("d2"):
                continue
            x = dall.sample(c, np.random.default_rng(c), n, rate)
            assert x.dtype == np.float32 and x.shape == (n,) and np.isfinite(x).all()
            if n > 100:
                assert np.sqrt(np.mean(x.astype(float) ** 2)) == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ValueError, match="Nyquist"):
        D2().sample(23, np.random.default_rng(0), 8000, 6000)


def test_same_generator_same_clip_and_fresh_draws_differ() -> None:
    for cls in FORMULA_DATASETS.values():
        d = cls()
        a = d.sample(3, np.random.default_rng(7), 4000, SR)
        assert np.array_equal(a, d.sample(3, np.random.default_rng(7), 4000, SR))
        assert not np.allclose(a, d.sample(3, np.random.default_rng(8), 4000, SR))


def test_band_noise_energy_is_in_band_with_slope_minus_beta() -> None:
    f = np.fft.rfftfreq(2 * SR, 1 / SR)
    gain = band_gain(f, (500.0, 4000.0), 0.25)
    assert gain[(f >= 500) & (f <= 4000)].min() == 1.0
    assert gain[(f < 500 / 2**0.25) | (f > 4000 * 2**0.25)].max() == 0.0
    for beta in (-2.0, 0.0, 2.0):
        x = band_noise(2 * SR, beta, (500.0, 4000.0), np.random.default_rng(1), SR, 0.25)
        power = np.abs(np.fft.rfft(x.astype(float))) ** 2
        outside = (f < 500 / 2**0.25) | (f > 4000 * 2**0.25)
        assert power[outside].sum() / power.sum() < 1e-6
        assert power[(f >= 500) & (f <= 4000)].sum() / power.sum() > 0.8
        assert spectral_slope(x, SR, 700.0, 3000.0) == pytest.approx(-beta, abs=0.1)


def test_d2_clip_energy_sits_in_its_own_band() -> None:
    d2 = D2()
    e = d2.band_edges
    assert np.allclose(e[[0, -1]], [50.0, 8000.0]) and np.allclose(np.diff(np.log(e)), np.log(160) / 6)
    f = np.fft.rfftfreq(SR, 1 / SR)
    for c in range(d2.n_classes):
        x = d2.sample(c, np.random.default_rng(c), SR, SR).astype(float)
        power = np.abs(np.fft.rfft(x)) ** 2
        share = [power[(f >= e[k]) & (f < e[k + 1])].sum() / power.sum() for k in range(6)]
        k = c % 6
        assert int(np.argmax(share)) == k and share[k] > 0.45
        reach = (e[k + 1] / e[k]) ** d2.band_jitter * 2**d2.rolloff_octaves
        near = (f >= e[k] / reach) & (f <= e[k + 1] * reach)
        assert power[near].sum() / power.sum() > 0.999


def _segment_slopes(x: np.ndarray, pieces: int = 8) -> np.ndarray:
    return np.array([spectral_slope(s, SR, 500.0, 7000.0, 256) for s in np.array_split(x, pieces)])


def test_d3_beta_drift_is_measurable() -> None:
    d3, u = D3(), np.linspace(0, 1, 8)
    for seed in range(4):
        trend = {}
        for drift in d3.drifts:
            c = d3.class_names.index(f"d3/{drift}/flat")
            slopes = _segment_slopes(d3.sample(c, np.random.default_rng(seed), SR, SR))
            fit = np.polyfit(u, slopes, 1)
            trend[drift] = (fit[0], np.std(slopes - np.polyval(fit, u)))
        assert abs(trend["steady"][0]) < 0.4 and trend["steady"][1] < 0.25
        assert trend["rise"][0] < -0.8 and trend["fall"][0] > 0.8  # slope = −β
        assert trend["swing"][1] > 0.25  # not a straight line


def test_d3_envelopes_are_measurable() -> None:
    d3 = D3()

    def variation(x: np.ndarray) -> float:
        # Frame RMS of the first difference (10 ms frames): differencing tilts any β to
        # high frequencies, so short frames estimate the level well and only the envelope moves.
        d = np.diff(x.astype(float))[: SR - 160]
        rms = np.sqrt(np.mean(d.reshape(-1, 160) ** 2, axis=1))
        return float(np.std(rms) / np.mean(rms))

    for seed in range(6):
        v = {
            e: variation(d3.sample(d3.class_names.index(f"d3/steady/{e}"), np.random.default_rng(seed), SR, SR))
            for e in d3.envelopes
        }
        assert v["flat"] < 0.2 and min(v["bursts"], v["am"], v["swell"]) > 0.3
