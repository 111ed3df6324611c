"""The espeak-ng speech corpus: speakers, synthesis, builds, dev trials."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data import synthetic_speech as ss
from training.data.manifest import read_manifest


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
    assert [(s.language, s.variant) for s in other] == [(s.language, s.variant)
                                                        for s in specs[:400]]
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
    frames = np.sqrt(np.mean(x[:x.size // 160 * 160].reshape(-1, 160) ** 2, axis=1))
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
    monkeypatch.setattr(ss.shutil, "which", lambda name: None)
    spec = ss.enumerate_speakers(1, seed=0)[0]
    with pytest.raises(RuntimeError, match="Debian package `espeak-ng`"):
        ss.synthesize_array(spec, "hello")


def _wav_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.wav")}


def test_tiny_corpus_is_valid_deterministic_and_skipped_on_rerun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = dict(n_speakers=3, utterances_per_speaker=2, seed=11, heldout_fraction=0.34,
                  progress=False)
    manifest = ss.build_speech_corpus(tmp_path / "a", workers=2, **kwargs)
    records = read_manifest(manifest)
    assert len(records) == 6
    assert Counter(r.identity for r in records) == {"spk0000": 2, "spk0001": 2, "spk0002": 2}
    splits = {r.identity: r.split for r in records}
    assert sorted(splits.values()) == ["heldout", "train", "train"]  # split by speaker
    for r in records:
        assert r.path.is_file() and r.path.parent.parent == tmp_path / "a" / "audio"
        x, sr = sf.read(r.path)
        assert sr == 16000 and x.ndim == 1
        assert ss.DURATION_RANGE[0] <= x.size / sr <= ss.DURATION_RANGE[1]
        assert r.duration == pytest.approx(x.size / sr, abs=1e-3)
        assert np.sqrt(np.mean(x**2)) > 0.02  # speech, not silence
        assert r.extra["text"] and r.extra["voice"] and r.extra["effect"] == "clean"
    assert len({r.extra["text"] for r in records}) == 6

    # Same seed elsewhere, sequentially: identical bytes.
    ss.build_speech_corpus(tmp_path / "b", workers=1, **kwargs)
    assert _wav_bytes(tmp_path / "a") == _wav_bytes(tmp_path / "b")

    # A rerun with the same arguments does no work at all.
    def fail(*args, **kw):
        raise AssertionError("rerun should not synthesize")

    monkeypatch.setattr(ss, "render_utterance", fail)
    assert ss.build_speech_corpus(tmp_path / "a", workers=1, **kwargs) == manifest
    assert json.loads((tmp_path / "a" / "build.json").read_text())["complete"] is True


def test_interrupted_build_resumes_and_changed_args_rebuild(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = dict(n_speakers=2, utterances_per_speaker=1, seed=5, progress=False, workers=1)
    out = tmp_path / "c"
    ss.build_speech_corpus(out, **kwargs)
    before = _wav_bytes(out)
    # Simulate an interruption after the first speaker: unfinished stamp, one shard missing.
    stamp = json.loads((out / "build.json").read_text())
    (out / "build.json").write_text(json.dumps({"args": stamp["args"], "complete": False}))
    (out / "audio" / "spk0001" / "utterances.jsonl").unlink()
    calls = []
    real = ss.render_utterance
    monkeypatch.setattr(ss, "render_utterance", lambda spec, *a: calls.append(spec.id)
                        or real(spec, *a))
    ss.build_speech_corpus(out, **kwargs)
    assert calls == ["spk0001"] and _wav_bytes(out) == before
    # Other arguments: the old audio goes, the new build replaces it.
    ss.build_speech_corpus(out, **{**kwargs, "seed": 6})
    assert _wav_bytes(out) != before and len(read_manifest(out / "manifest.jsonl")) == 2


def test_foreign_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    with pytest.raises(FileExistsError, match="build.json"):
        ss.build_speech_corpus(tmp_path, 1, 1, seed=0, progress=False)


def test_dev_trials_full_cross_product(tmp_path: Path) -> None:
    dev = ss.build_dev_trials(tmp_path / "dev", n_speakers=4, enroll_per_speaker=1,
                              test_per_speaker=2, seed=1, workers=2, progress=False)
    speakers = sorted(dev.enrollments)
    assert len(speakers) == 4 and all(len(v) == 1 for v in dev.enrollments.values())
    assert all(s.startswith("spk1") for s in speakers)  # the reserved dev range
    assert len(dev.trials) == 4 * 4 * 2 and sum(t.target for t in dev.trials) == 8
    assert {(t.speaker, t.test) for t in dev.trials} == {
        (s, t.test) for s in speakers for t in dev.trials}
    for t in dev.trials:
        assert t.test.is_file() and t.target == (t.test.parent.name == t.speaker)
    lines = (tmp_path / "dev" / "trials.txt").read_text().splitlines()
    assert lines[0].split()[0] in "01" and lines[0].split()[2].startswith("audio/")
    records = read_manifest(tmp_path / "dev" / "manifest.jsonl")
    effects = {r.extra["effect"] for r in records if r.split == "test"}
    assert effects == set(ss.DEV_TEST_EFFECTS)  # 8 test utterances cycle through all 6
    assert {r.extra["effect"] for r in records if r.split == "enroll"} == {"clean"}
    texts = [r.extra["text"] for r in records]
    assert len(set(texts)) == len(texts)  # enrollment and test never share a sentence
    assert ss.load_dev_trials(tmp_path / "dev") == dev
    assert dev.name == "synthetic-speech-dev-4spk-1e2t-seed1"
