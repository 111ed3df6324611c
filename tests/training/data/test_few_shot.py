"""k-shot splits over predefined folds and class-balanced fine-tuning batches (METHODS §4)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data.audio_store import AudioStore
from training.data.augment import Augmenter
from training.data.few_shot import ClipBatches, class_list, kshot_split
from training.data.manifest import ManifestRecord

CLASSES = ("dog", "rain", "siren", "wind")  # labels 3, 1, 0, 2 below: not alphabetical


def _records(per_fold: int = 3, folds: int = 5) -> list[ManifestRecord]:
    label = {"dog": 3, "rain": 1, "siren": 0, "wind": 2}
    return [
        ManifestRecord(Path(f"/data/{c}-{f}-{j}.wav"), c, 1.0, f"fold{f}", {"fold": f, "label": label[c]})
        for f in range(1, folds + 1)
        for c in CLASSES
        for j in range(per_fold)
    ]


def test_k_clips_per_class_from_the_other_folds() -> None:
    records = _records()
    for test_fold in range(1, 6):
        train, test = kshot_split(records, test_fold=test_fold, k=2, draw=0, seed=0)
        assert Counter(r.identity for r in train) == {c: 2 for c in CLASSES}
        assert all(r.extra["fold"] != test_fold and r.split == "train" for r in train)
        assert [r.path for r in test] == [r.path for r in records if r.extra["fold"] == test_fold]
        assert all(r.split == "test" for r in test)
        assert not {r.path for r in train} & {r.path for r in test}
    train, _ = kshot_split(records, test_fold=2, k=None, draw=0, seed=0)
    assert len(train) == 4 * 4 * 3 and {r.extra["fold"] for r in train} == {1, 3, 4, 5}


def test_draws_differ_and_each_draw_is_deterministic() -> None:
    records = _records()

    def picked(**kw) -> list[Path]:
        return [r.path for r in kshot_split(records, **{"test_fold": 1, "k": 1, "seed": 0, "draw": 0, **kw})[0]]

    draws = [picked(draw=d) for d in range(5)]
    assert len({tuple(d) for d in draws}) == 5
    assert picked(draw=3) == draws[3] and picked(seed=1) != draws[0]
    assert len({tuple(picked(draw=0, test_fold=f)) for f in (1, 2)}) == 2


def test_kshot_errors() -> None:
    records = _records(per_fold=1)
    with pytest.raises(ValueError, match="fewer than k = 5"):
        kshot_split(records, test_fold=1, k=5, draw=0, seed=0)
    with pytest.raises(ValueError, match="test fold 9"):
        kshot_split(records, test_fold=9, k=1, draw=0, seed=0)
    with pytest.raises(ValueError, match="k must be"):
        kshot_split(records, test_fold=1, k=0, draw=0, seed=0)
    only_in_fold_1 = records + [ManifestRecord(Path("/x.wav"), "owl", 1.0, "fold1", {"fold": 1, "label": 4})]
    with pytest.raises(ValueError, match="owl"):
        kshot_split(only_in_fold_1, test_fold=1, k=1, draw=0, seed=0)
    with pytest.raises(ValueError, match="fold"):
        kshot_split([ManifestRecord(Path("/y.wav"), "dog", 1.0, "train")], test_fold=1, k=1, draw=0, seed=0)


def test_class_list_follows_labels_else_names() -> None:
    assert class_list(_records()) == ["siren", "rain", "wind", "dog"]
    unlabelled = [ManifestRecord(Path(f"/{c}.wav"), c, 1.0, "train") for c in CLASSES[::-1]]
    assert class_list(unlabelled) == list(CLASSES)


@pytest.fixture()
def clips() -> tuple[list[ManifestRecord], AudioStore]:
    """One k = 2 training set over 4 classes, each clip a distinct ramp so that crops can be
    traced back to it; clips are 0.2–0.5 s, so 0.3 s crops both fit and loop."""
    train, _ = kshot_split(_records(), test_fold=1, k=2, draw=0, seed=0)
    arrays = [(100_000 * i + np.arange(int(1600 * (2 + i % 4)))).astype(np.float32) for i in range(len(train))]
    return train, AudioStore.from_arrays(train, arrays, 8000)


def test_clip_batches_are_balanced_crops_of_their_class(clips) -> None:
    train, store = clips
    batches = ClipBatches(train, store, batch_size=10, clip_seconds=0.3, augment=Augmenter.none(8000), seed=0, steps=20)
    assert batches.classes == ["siren", "rain", "wind", "dog"]
    for step in range(5):
        b = batches[step]
        assert b["waveform"].shape == (10, 2400) and b["waveform"].dtype == torch.float32
        assert torch.equal(b["lengths"], torch.full((10,), 2400))
        counts = Counter(b["labels"].tolist())
        assert set(counts) == {0, 1, 2, 3} and set(counts.values()) == {2, 3}
        for label, clip, crop in zip(b["labels"].tolist(), b["clip"].tolist(), b["waveform"]):
            assert train[clip].identity == batches.classes[label]
            assert int(crop[0]) // 100_000 == clip  # the ramp's offset says which clip
    a = batches[3]
    assert all(torch.equal(a[k], batches[3][k]) for k in a)
    assert not torch.equal(a["waveform"], batches[4]["waveform"])
    other_rank = ClipBatches(
        train, store, batch_size=10, clip_seconds=0.3, augment=Augmenter.none(8000), seed=0, rank=1, steps=20
    )
    assert not torch.equal(a["waveform"], other_rank[3]["waveform"])


def test_clip_batches_with_given_classes_and_errors(clips) -> None:
    train, store = clips
    given = ["wind", "dog", "siren", "rain"]
    b = ClipBatches(
        train, store, batch_size=4, clip_seconds=0.1, augment=Augmenter.none(8000), seed=1, steps=1, classes=given
    )[0]
    for label, clip in zip(b["labels"].tolist(), b["clip"].tolist()):
        assert train[clip].identity == given[label]
    with pytest.raises(ValueError, match="not in classes"):
        ClipBatches(
            train,
            store,
            batch_size=4,
            clip_seconds=0.1,
            augment=Augmenter.none(8000),
            seed=1,
            steps=1,
            classes=["wind", "dog", "siren"],
        )[0]
    with pytest.raises(ValueError, match="without training clips"):
        ClipBatches(
            train,
            store,
            batch_size=4,
            clip_seconds=0.1,
            augment=Augmenter.none(8000),
            seed=1,
            steps=1,
            classes=[*given, "owl"],
        )[0]
