"""The synthetic environmental-sound corpus: valid, deterministic, fold-balanced, resumable,
and made of classes that a trivial classifier can already tell apart."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data import sound_corpus as sc
from training.data.manifest import read_manifest

TEN = tuple(sc.SOUND_CLASSES)[:10]
TINY = dict(clips_per_class=2, clip_seconds=1.0, n_folds=5, seed=3, progress=False, classes=TEN)


def _wav_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.wav")}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sc.build_sound_corpus(tmp_path_factory.mktemp("sounds") / "a", workers=2, **TINY)


def test_registry_has_at_least_ten_distinct_classes() -> None:
    assert len(sc.SOUND_CLASSES) >= 10
    assert {"rain", "wind", "engine", "siren", "alarm", "hum", "footsteps", "bird", "door_knock", "dog_bark"} <= set(
        sc.SOUND_CLASSES
    )


def test_tiny_corpus_is_valid_with_balanced_folds(tiny: Path) -> None:
    records = read_manifest(tiny)
    assert len(records) == 20
    assert Counter(r.identity for r in records) == {name: 2 for name in TEN}
    for r in records:
        assert r.path.is_file() and r.path.parent == tiny.parent / "audio" / r.identity
        x, rate = sf.read(r.path)
        assert rate == 16000 and x.shape == (16000,) and r.duration == 1.0
        assert 0.005 < np.sqrt(np.mean(x**2)) < 0.3
        assert np.max(np.abs(x)) <= 0.991  # 0.99 + 16-bit PCM rounding
        assert r.extra["label"] == TEN.index(r.identity) and r.split == f"fold{r.extra['fold']}"
        assert sc.SNR_DB[0] <= r.extra["snr_db"] <= sc.SNR_DB[1]
        assert r.extra["noise_color"] in sc.NOISE_COLORS
    # Two clips of a class land in two folds; over the corpus every fold holds 4 clips.
    for name in TEN:
        assert len({r.extra["fold"] for r in records if r.identity == name}) == 2
    assert Counter(r.extra["fold"] for r in records) == {f: 4 for f in range(1, 6)}
    stamp = json.loads((tiny.parent / "build.json").read_text())
    assert stamp["complete"] and stamp["args"]["classes"] == list(TEN)


def test_fold_assignment_is_balanced_per_class_and_overall() -> None:
    rng = np.random.default_rng(0)
    folds = [sc.fold_assignment(7, 5, label, rng) for label in range(5)]
    for f in folds:
        assert set(Counter(f.tolist()).values()) == {1, 2} and set(f.tolist()) == set(range(1, 6))
    assert set(Counter(np.concatenate(folds).tolist()).values()) == {7}


def test_build_is_deterministic_and_skipped_on_rerun(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = sc.build_sound_corpus(tmp_path / "b", workers=1, **TINY)
    assert _wav_bytes(tiny.parent) == _wav_bytes(again.parent)
    assert len(set(_wav_bytes(again.parent).values())) == 20  # no two clips alike

    def fail(*args, **kw):
        raise AssertionError("a finished build must not render again")

    monkeypatch.setattr(sc, "render_clip", fail)
    assert sc.build_sound_corpus(tmp_path / "b", workers=1, **TINY) == again


def test_interrupted_build_resumes_and_changed_args_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {**TINY, "classes": ("siren", "hum"), "clip_seconds": 0.25, "workers": 1}
    out = tmp_path / "c"
    sc.build_sound_corpus(out, **kwargs)
    before = _wav_bytes(out)
    stamp = json.loads((out / "build.json").read_text())
    (out / "build.json").write_text(json.dumps({"args": stamp["args"], "complete": False}))
    (out / "audio" / "hum" / "clips.jsonl").unlink()
    calls = []
    real = sc.render_clip
    monkeypatch.setattr(sc, "render_clip", lambda name, *a: calls.append(name) or real(name, *a))
    sc.build_sound_corpus(out, **kwargs)
    assert calls == ["hum", "hum"] and _wav_bytes(out) == before
    sc.build_sound_corpus(out, **{**kwargs, "seed": 4})
    assert _wav_bytes(out).keys() == before.keys() and _wav_bytes(out) != before


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="thunder"):
        sc.build_sound_corpus(tmp_path / "x", classes=("rain", "thunder"), progress=False)
    (tmp_path / "y" / "audio").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="build.json"):
        sc.build_sound_corpus(tmp_path / "y", **TINY)


def test_every_class_renders_at_44k() -> None:
    for name in sc.SOUND_CLASSES:
        x, info = sc.render_clip(name, np.random.default_rng(1), 22050, 44100)
        assert x.shape == (22050,) and np.isfinite(x).all() and np.max(np.abs(x)) <= 0.99 + 1e-9
        assert np.sqrt(np.mean(x**2)) > 0.01, name


def _features(x: np.ndarray) -> np.ndarray:
    """Log energy in 24 log-spaced bands over 32 ms frames (16 kHz), relative to the clip's
    mean level: mean, std and 95th percentile over frames, the loudest frame's shape, and the
    std of the frame level. A minimal bag-of-frames description."""
    frames = x[: x.size // 512 * 512].reshape(-1, 512) * np.hanning(512)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = np.geomspace(2, 257, 25).astype(int)
    bands = np.log(np.stack([power[:, a:b].sum(1) for a, b in zip(edges[:-1], edges[1:])], 1) + 1e-10)
    level = np.log(power.sum(1) + 1e-10)
    bands -= level.mean()  # the level is random per clip; the class is in the shape
    return np.concatenate(
        [
            bands.mean(0),
            bands.std(0),
            np.percentile(bands, 95, axis=0),
            bands[np.argmax(level)] - bands.mean(0),
            [level.std()],
        ]
    )


def test_classes_are_distinct_to_a_nearest_centroid_classifier() -> None:
    # 6 clips × 2 s per class, with their random noise, reverb and levels; leave-one-out
    # nearest centroid scores 0.85–0.90 over seeds (chance: 1/12), so 0.75 fails only if
    # classes collapse into one another.
    names = list(sc.SOUND_CLASSES)
    clips = [
        (c, sc.render_clip(name, np.random.default_rng([7, c, j]), 32000, 16000)[0])
        for c, name in enumerate(names)
        for j in range(6)
    ]
    feats = np.array([_features(x) for _, x in clips])
    labels = np.array([c for c, _ in clips])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    correct = 0
    for i in range(labels.size):
        others = np.arange(labels.size) != i
        centroids = np.stack([feats[others & (labels == c)].mean(0) for c in range(len(names))])
        correct += int(np.argmin(((centroids - feats[i]) ** 2).sum(1)) == labels[i])
    assert correct / labels.size >= 0.75
