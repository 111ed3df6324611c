"""The espeak-ng pseudo-speakers and synthesis."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data import synthetic_speech as ss


def test_enumerate_speakers_distinct_spread_and_deterministic() -> None:
    specs = ss.enumerate_speakers(1500, seed=3)
    assert len(specs) == 1500
    keys = {(s.language, s.variant, s.pitch, s.speed, s.word_gap) for s in specs}
    assert len(keys) == 1500 and len({s.id for s in specs}) == 1500
    # variant and language first, pitch band second
    n_var = len(ss.VARIANTS)
    assert len({s.variant for s in specs[:n_var]}) == n_var
    n_grid = n_var * len(ss.LANGUAGES)
    assert len({(s.language, s.variant) for s in specs[:n_grid]}) == n_grid
    assert len({s.language for s in specs[:40]}) >= 15
    assert all(46 <= s.pitch <= 54 for s in specs[:n_grid])
    assert all(abs(s.pitch - 30) <= 4 for s in specs[n_grid:])
    # deterministic, prefix-stable, and ranges are disjoint speakers whatever the seed
    assert ss.enumerate_speakers(400, seed=3) == specs[:400]
    assert ss.enumerate_speakers(10, seed=3, start=400) == specs[400:410]
    other = ss.enumerate_speakers(400, seed=4)
    assert [(s.language, s.variant) for s in other] == [(s.language, s.variant) for s in specs[:400]]
    assert other != specs[:400]
    with pytest.raises(ValueError, match="at most"):
        ss.enumerate_speakers(ss.max_speakers() + 1, seed=0)


def test_sentences_are_seeded() -> None:
    a = ss.make_sentence(np.random.default_rng(5), 8)
    assert a == ss.make_sentence(np.random.default_rng(5), 8)
    assert a != ss.make_sentence(np.random.default_rng(6), 8)
    assert len(a.split()) == 8 and a.endswith(".")
    assert len(ss.word_list()) >= 300


def test_synthesize_writes_trimmed_16k_mono(tmp_path: Path) -> None:
    spec = ss.enumerate_speakers(1, seed=0)[0]
    path = ss.synthesize(spec, "The weather is nice today in the city.", tmp_path / "a.wav")
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    x, _ = sf.read(path)
    assert 0.8 < x.size / 16000 < 4.0
    frames = np.sqrt(np.mean(x[: x.size // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    loud = frames > frames.max() * 0.01  # the trim keeps 50 ms (5 frames) around speech
    assert loud[:6].any() and loud[-6:].any()
    assert np.max(np.abs(x)) == pytest.approx(0.5, abs=1e-3)


def test_check_voices_rejects_unknown_variant() -> None:
    # espeak-ng would silently fall back to its default voice; the builders must not.
    spec = ss.SpeakerSpec("spk9999", "en-us", "no-such-variant", 50, 170, 0)
    with pytest.raises(RuntimeError, match="no-such-variant"):
        ss.check_voices([spec])
    ss.check_voices(ss.enumerate_speakers(ss.max_speakers() // len(ss.PITCH_LEVELS), seed=0))


def test_missing_espeak_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    spec = ss.enumerate_speakers(1, seed=0)[0]
    with pytest.raises(RuntimeError, match="Debian package `espeak-ng`"):
        ss.synthesize_array(spec, "hello")
