"""k-shot splits over predefined folds and labelled crop batches for fine-tuning (METHODS §4).

The protocol: for each test fold and each of several draws, fine-tune on k labelled clips per
class taken from the other folds (k ∈ {1, 2, 5, 10, all}) and test on the held-out fold;
accuracy is averaged over folds and draws. ``kshot_split`` makes one such split from records
that carry an integer ``fold`` extra (training.data.sound_datasets, sound_corpus);
``ClipBatches`` serves class-balanced random crops of the training clips as a pure function of
(seed, rank, step), like training.data.speaker_batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch

from training.data.audio_store import AudioStore
from training.data.augment import Augmenter
from training.data.formula_batches import balanced_labels
from training.data.manifest import ManifestRecord
from training.data.speaker_batches import _StepBatches


def _fold(record: ManifestRecord) -> int:
    try:
        return int(record.extra["fold"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"record {record.path} has no integer 'fold' extra") from None


def class_list(records: Sequence[ManifestRecord]) -> list[str]:
    """Class names ordered by their ``label`` extra where every record has one, else sorted;
    the index into this list is the label that ``ClipBatches`` gives."""
    labels: dict[str, int] = {}
    for r in records:
        if r.identity is None:
            raise ValueError(f"record {r.path} has no class (identity None)")
        if "label" not in r.extra:
            return sorted({str(x.identity) for x in records})
        labels.setdefault(r.identity, int(r.extra["label"]))
    return sorted(labels, key=lambda name: (labels[name], name))


def kshot_split(
    records: Sequence[ManifestRecord], *, test_fold: int, k: int | None, draw: int, seed: int
) -> tuple[list[ManifestRecord], list[ManifestRecord]]:
    """(training, test) records for one fold and draw of the k-shot protocol.

    test: every record of ``test_fold``, in input order, with split "test".
    training: k records per class drawn without replacement from the other folds (every one
    when k is None), split "train", grouped by class (sorted names) in input order within a
    class. The draw is seeded by (seed, test_fold, k, draw): draws differ from each other, and
    a k-shot set does not depend on which other k or folds are run. A class with fewer than k
    clips outside the test fold is an error, as a silently smaller k would bias the protocol.
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be a positive number of clips per class or None, got {k}")
    if draw < 0 or seed < 0 or test_fold < 0:
        raise ValueError("draw, seed and test_fold must be non-negative")
    folds = [_fold(r) for r in records]
    if test_fold not in folds:
        raise ValueError(f"test fold {test_fold} not among the records' folds {sorted(set(folds))}")
    test = [dataclasses.replace(r, split="test") for r, f in zip(records, folds) if f == test_fold]
    by_class: dict[str, list[ManifestRecord]] = {}
    for r, f in zip(records, folds):
        if f != test_fold:
            by_class.setdefault(str(r.identity), []).append(r)
    missing = sorted({str(r.identity) for r in test} - set(by_class))
    if missing:
        raise ValueError(f"classes {missing} have no clip outside fold {test_fold}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, test_fold, k or 0, draw]))
    train = []
    for name in sorted(by_class):
        pool = by_class[name]
        if k is not None and len(pool) < k:
            raise ValueError(f"class {name!r} has {len(pool)} clips outside fold {test_fold}, fewer than k = {k}")
        chosen = range(len(pool)) if k is None else sorted(rng.choice(len(pool), k, replace=False).tolist())
        train += [dataclasses.replace(pool[i], split="train") for i in chosen]
    return train, test


class ClipBatches(_StepBatches):
    """Class-balanced batches of labelled random crops for fine-tuning (METHODS §4).

    ``__getitem__(step)`` returns waveform: float32 [B, T] with T = round(clip_seconds ·
    store.sample_rate), lengths: int64 [B] (all T), labels: int64 [B], indices into
    ``classes`` (default ``class_list(records)``), and clip: int64 [B], positions in
    ``records``. Labels are balanced per batch (formula_batches.balanced_labels), each item a
    random clip of its class (with replacement: with k = 1 a batch repeats clips, each time
    with its own crop and augmentation), so class imbalance (UrbanSound8K) does not skew
    fine-tuning. Clips shorter than T loop, as in AudioStore.crop.
    """

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        store: AudioStore,
        *,
        batch_size: int,
        clip_seconds: float,
        augment: Augmenter,
        seed: int,
        rank: int = 0,
        steps: int,
        classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(records, store, crop_seconds=clip_seconds, augment=augment, seed=seed, rank=rank, steps=steps)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self._given_classes = None if classes is None else list(classes)

    @cached_property
    def classes(self) -> list[str]:
        """Class names; a batch's labels index this list."""
        return class_list(self.records) if self._given_classes is None else self._given_classes

    @cached_property
    def _clips_of(self) -> list[np.ndarray]:
        """Record positions of each class, in ``classes`` order (each class needs one)."""
        position = {name: c for c, name in enumerate(self.classes)}
        groups: list[list[int]] = [[] for _ in self.classes]
        for i, r in enumerate(self.records):
            if r.identity not in position:
                raise ValueError(f"record {r.path} has class {r.identity!r}, not in classes")
            groups[position[r.identity]].append(i)
        empty = [name for name, g in zip(self.classes, groups) if not g]
        if empty:
            raise ValueError(f"classes without training clips: {empty}")
        return [np.array(g, dtype=np.int64) for g in groups]

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = self.rng(step)
        labels = balanced_labels(len(self.classes), self.batch_size, rng)
        clips = np.array(
            [self._clips_of[c][rng.integers(self._clips_of[c].size)] for c in labels.tolist()], dtype=np.int64
        )
        return {
            "waveform": self._crops(clips, rng),
            "lengths": self._lengths(clips.size),
            "labels": torch.from_numpy(labels),
            "clip": torch.from_numpy(clips),
        }
