"""The espeak-ng corpus builders: speech corpora, resumable builds, dev trials."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data import speech_corpus as sc
from training.data import synthetic_speech as ss
from training.data.manifest import read_manifest


def _wav_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.wav")}


def test_tiny_corpus_is_valid_deterministic_and_skipped_on_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = dict(n_speakers=3, utterances_per_speaker=2, seed=11, heldout_fraction=0.34, progress=False)
    manifest = sc.build_speech_corpus(tmp_path / "a", workers=2, **kwargs)
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
    sc.build_speech_corpus(tmp_path / "b", workers=1, **kwargs)
    assert _wav_bytes(tmp_path / "a") == _wav_bytes(tmp_path / "b")

    # A rerun with the same arguments does no work at all.
    def fail(*args, **kw):
        raise AssertionError("rerun should not synthesize")

    monkeypatch.setattr(sc, "render_utterance", fail)
    assert sc.build_speech_corpus(tmp_path / "a", workers=1, **kwargs) == manifest
    assert json.loads((tmp_path / "a" / "build.json").read_text())["complete"] is True


def test_interrupted_build_resumes_and_changed_args_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = dict(n_speakers=2, utterances_per_speaker=1, seed=5, progress=False, workers=1)
    out = tmp_path / "c"
    sc.build_speech_corpus(out, **kwargs)
    before = _wav_bytes(out)
    # Simulate an interruption after the first speaker: unfinished stamp, one shard missing.
    stamp = json.loads((out / "build.json").read_text())
    (out / "build.json").write_text(json.dumps({"args": stamp["args"], "complete": False}))
    (out / "audio" / "spk0001" / "utterances.jsonl").unlink()
    calls = []
    real = sc.render_utterance
    monkeypatch.setattr(sc, "render_utterance", lambda spec, *a: calls.append(spec.id) or real(spec, *a))
    sc.build_speech_corpus(out, **kwargs)
    assert calls == ["spk0001"] and _wav_bytes(out) == before
    # Other arguments: the old audio goes, the new build replaces it.
    sc.build_speech_corpus(out, **{**kwargs, "seed": 6})
    assert _wav_bytes(out) != before and len(read_manifest(out / "manifest.jsonl")) == 2


def test_foreign_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    with pytest.raises(FileExistsError, match="build.json"):
        sc.build_speech_corpus(tmp_path, 1, 1, seed=0, progress=False)


def test_dev_trials_full_cross_product(tmp_path: Path) -> None:
    dev = sc.build_dev_trials(
        tmp_path / "dev", n_speakers=4, enroll_per_speaker=1, test_per_speaker=2, seed=1, workers=2, progress=False
    )
    speakers = sorted(dev.enrollments)
    assert len(speakers) == 4 and all(len(v) == 1 for v in dev.enrollments.values())
    assert all(s.startswith("spk1") for s in speakers)  # the reserved dev range
    assert len(dev.trials) == 4 * 4 * 2 and sum(t.target for t in dev.trials) == 8
    assert {(t.speaker, t.test) for t in dev.trials} == {(s, t.test) for s in speakers for t in dev.trials}
    for t in dev.trials:
        assert t.test.is_file() and t.target == (t.test.parent.name == t.speaker)
    lines = (tmp_path / "dev" / "trials.txt").read_text().splitlines()
    assert lines[0].split()[0] in "01" and lines[0].split()[2].startswith("audio/")
    records = read_manifest(tmp_path / "dev" / "manifest.jsonl")
    effects = {r.extra["effect"] for r in records if r.split == "test"}
    assert effects == set(sc.DEV_TEST_EFFECTS)  # 8 test utterances cycle through all 6
    assert {r.extra["effect"] for r in records if r.split == "enroll"} == {"clean"}
    texts = [r.extra["text"] for r in records]
    assert len(set(texts)) == len(texts)  # enrollment and test never share a sentence
    assert sc.load_dev_trials(tmp_path / "dev") == dev
    assert dev.name == "synthetic-speech-dev-4spk-1e2t-seed1"
