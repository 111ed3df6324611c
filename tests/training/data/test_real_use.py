"""Real-use conditions (training/data/real_use.py) and the held-out sound classes: each condition
does to the audio what its name says (checked on the signal, not on the drawn parameters), a
corpus records the conditions its config asks for, and the held-out classes are no training
class."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.channel_effects import read_wav
from training.data.heldout_sounds import HELDOUT_CLASSES
from training.data.manifest import read_manifest
from training.data.real_use import RealUse, apply_conditions, build_real_use_corpus
from training.data.sound_corpus import SOUND_CLASSES

SR = 16000
OFF = {"pitch_cents": None, "tempo": None, "reverb": None, "snr_db": None, "noise_color": None, "band": None}


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / SR)[spectrum.argmax()])


def _energy_above(x: np.ndarray, hz: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(power[np.fft.rfftfreq(x.size, 1 / SR) > hz].sum() / power.sum())


def test_pitch_moves_a_tone_by_the_cents_asked():
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(SR) / SR)
    up = apply_conditions(tone, SR, SR, {**OFF, "pitch_cents": 1200.0}, np.random.default_rng(0))
    assert _peak_hz(up[SR // 4 : -SR // 4]) == pytest.approx(2000.0, rel=0.02)  # an octave up


def test_tempo_stretches_a_burst_and_keeps_its_pitch():
    burst = np.zeros(2 * SR)
    burst[: SR // 2] = np.sin(2 * np.pi * 800.0 * np.arange(SR // 2) / SR)  # 0.5 s tone, then silence
    slow = apply_conditions(burst, 2 * SR, SR, {**OFF, "tempo": 0.5}, np.random.default_rng(0))
    loud = np.flatnonzero(np.abs(slow) > 0.1 * np.abs(slow).max())
    assert (loud[-1] - loud[0]) / SR == pytest.approx(1.0, abs=0.1)
    assert _peak_hz(slow[: SR // 2]) == pytest.approx(800.0, rel=0.02)


def test_band_limits_cut_the_high_band_and_noise_sets_the_snr():
    white = np.random.default_rng(1).standard_normal(SR)
    rng = np.random.default_rng(2)
    phone = apply_conditions(white, SR, SR, {**OFF, "band": "telephone"}, rng)
    low = apply_conditions(white, SR, SR, {**OFF, "band": "lowpass-2000"}, rng)
    assert _energy_above(white, 3800) > 0.4
    assert _energy_above(phone, 3800) < 0.01 and _energy_above(low, 2600) < 0.01
    silence_then_tone = np.sin(2 * np.pi * 500.0 * np.arange(SR) / SR)
    noisy = apply_conditions(silence_then_tone, SR, SR, {**OFF, "snr_db": 0.0, "noise_color": "white"}, rng)
    # At 0 dB half the power is the tone's: its FFT bin holds about half of the total power.
    power = np.abs(np.fft.rfft(noisy)) ** 2
    assert power[495:506].sum() / power.sum() == pytest.approx(0.5, abs=0.08)


def test_a_corpus_records_the_conditions_its_config_asks_for(tmp_path):
    always = RealUse(
        pitch_p=1.0, pitch_cents=(100.0, 200.0), tempo_p=1.0, tempo=(0.9, 1.1), reverb_p=1.0, noise_p=1.0,
        snr_db=(5.0, 6.0), band_p=1.0, telephone_share=0.0, lowpass_hz=(3000.0, 3500.0),
    )  # fmt: skip
    never = RealUse(pitch_p=0.0, tempo_p=0.0, reverb_p=0.0, noise_p=0.0, band_p=0.0)
    classes = {k: SOUND_CLASSES[k] for k in ("siren", "rain")}
    for conditions, name in ((always, "always"), (never, "never")):
        manifest = build_real_use_corpus(
            tmp_path / name, classes, conditions, clips_per_class=3, clip_seconds=1.0, workers=1, progress=False
        )
        records = read_manifest(manifest)
        assert sorted({r.identity for r in records}) == ["rain", "siren"] and len(records) == 6
        for r in records:
            x, rate = read_wav(r.path)
            assert rate == SR and x.size == SR and np.all(np.isfinite(x))
            if conditions is always:
                assert 100 <= r.extra["pitch_cents"] <= 200 and 0.9 <= r.extra["tempo"] <= 1.1
                assert 5 <= r.extra["snr_db"] <= 6 and r.extra["reverb"] is not None
                assert r.extra["band"].startswith("lowpass-") and _energy_above(x, 4200) < 0.01
            else:
                assert all(r.extra[k] is None for k in OFF)


def test_bad_conditions_are_refused():
    with pytest.raises(ValueError, match="noise_p"):
        RealUse(noise_p=1.5)
    with pytest.raises(ValueError, match="snr_db"):
        RealUse(snr_db=(20.0, 10.0))
    with pytest.raises(ValueError, match="unknown real_use keys"):
        RealUse.from_config({"noise": 0.5})


def test_held_out_classes_are_no_training_class_and_make_sound():
    assert len(HELDOUT_CLASSES) >= 6 and not set(HELDOUT_CLASSES) & set(SOUND_CLASSES)
    for name, generator in HELDOUT_CLASSES.items():
        x = generator(np.random.default_rng(3), 2 * SR, SR)
        assert x.shape == (2 * SR,) and np.all(np.isfinite(x)) and np.std(x) > 0, name
