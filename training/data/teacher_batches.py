"""Step-indexed batches for blind distillation from a face teacher (METHODS §8).

Like ``speaker_batches`` (whose machinery this reuses), item ``step`` is the whole batch of that
step, a pure function of (seed, rank, step), so runs resume exactly and ranks need no
coordination. The teacher is a [clips, D] array aligned with ``records`` (one row per clip,
``training.methods.teacher_sampling.teacher_embeddings``); the records carry no identity.

- ``TeacherBatches``: M anchors (screened by τ_neg unless ``screen`` is off), each with N−1
  neighbours drawn from its offline top-K table (above τ_pos, from other videos unless
  ``cross_video`` is off) as its pseudo-class. The batch is M·(N−1) (anchor crop, neighbour crop)
  pairs, keyed by their anchor: ``speakers`` = the pseudo-class (0..M−1), ``labelled`` all True,
  the very dict ``PairBatches`` gives, so ``gcl_step`` and the GCL/AP losses train on it as they
  are. With N = 2 each pseudo-class is one pair: the AP loss.
- ``RegressionBatches``: M distinct clips, one crop each, with their teacher embeddings (the
  regression baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch

from training.data.audio_store import AudioStore
from training.data.augment import Augmenter
from training.data.manifest import ManifestRecord
from training.data.speaker_batches import _distinct, _StepBatches
from training.methods.teacher_sampling import cosine_matrix, neighbour_table, screen_anchors


def _check_teacher(teacher: np.ndarray, records: Sequence[ManifestRecord]) -> None:
    if teacher.ndim != 2 or teacher.shape[0] != len(records):
        raise ValueError(f"teacher must be [clips, D] with one row per record ({len(records)}), got {teacher.shape}")
    if any("video" not in r.extra for r in records):
        raise ValueError("every record needs a 'video' field (the cross-video constraint reads it)")


class TeacherBatches(_StepBatches):
    """Teacher-sampled pseudo-class batches (module docstring).

    ``__getitem__(step)`` returns anchor, positive: float32 [P, T] with P = M'·(N−1), M' ≤ M the
    anchors found (fewer only when screening runs out of candidates); lengths int64 [P];
    speakers int64 [P] (pseudo-class 0..M'−1, anchor-major); labelled bool [P] (all True);
    anchor_utterance, positive_utterance int64 [P] (positions in ``records``).
    """

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        store: AudioStore,
        teacher: np.ndarray,
        *,
        classes_per_batch: int = 200,
        per_class: int = 2,
        k: int = 5,
        tau_pos: float | None = 0.5,
        tau_neg: float | None = 0.4,
        cross_video: bool = True,
        screen: bool = True,
        crop_seconds: float = 2.0,
        augment: Augmenter,
        seed: int,
        rank: int = 0,
        steps: int,
    ) -> None:
        super().__init__(records, store, crop_seconds=crop_seconds, augment=augment, seed=seed, rank=rank, steps=steps)
        _check_teacher(teacher, records)
        if classes_per_batch < 2 or per_class < 2:
            raise ValueError(f"need >= 2 pseudo-classes of >= 2 clips, got {classes_per_batch} x {per_class}")
        if per_class - 1 > k:
            raise ValueError(f"per_class - 1 = {per_class - 1} neighbours cannot come from a top-{k} table")
        self.teacher = teacher
        self.classes_per_batch, self.per_class, self.k = classes_per_batch, per_class, k
        self.tau_pos, self.tau_neg = tau_pos, (tau_neg if screen else None)
        self.cross_video, self.screen = cross_video, screen

    @cached_property
    def sims(self) -> np.ndarray:
        """Teacher cosine between every two clips [C, C]."""
        return cosine_matrix(self.teacher)

    @cached_property
    def neighbours(self) -> list[np.ndarray]:
        """The offline top-K table (``neighbour_table``), one array of clip positions per clip."""
        videos = [str(r.extra["video"]) for r in self.records]
        return neighbour_table(self.teacher, videos, k=self.k, tau_pos=self.tau_pos, cross_video=self.cross_video)

    @cached_property
    def eligible(self) -> np.ndarray:
        """Clips with at least N−1 neighbours: the only ones that can anchor a pseudo-class."""
        need = self.per_class - 1
        return np.array([i for i, n in enumerate(self.neighbours) if n.size >= need], dtype=np.int64)

    def pseudo_classes(self, step: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        """(anchors [M'], neighbours [M', N−1]) of batch ``step`` and the generator, for the crops."""
        rng = self.rng(step)
        if self.eligible.size < 2:
            raise ValueError(f"only {self.eligible.size} clips have {self.per_class - 1} teacher neighbours")
        anchors = screen_anchors(rng, self.sims, self.eligible, self.classes_per_batch, self.tau_neg)
        if anchors.size < 2:
            raise ValueError("anchor screening found fewer than 2 anchors below tau_neg")
        picks = [
            self.neighbours[a][_distinct(rng, self.neighbours[a].size, self.per_class - 1, "neighbours")]
            for a in anchors.tolist()
        ]
        return anchors, np.stack(picks).astype(np.int64), rng

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        anchors, neighbours, rng = self.pseudo_classes(step)
        anchor = np.repeat(anchors, neighbours.shape[1])
        positive = neighbours.reshape(-1)
        classes = np.repeat(np.arange(anchors.size, dtype=np.int64), neighbours.shape[1])
        return {
            "anchor": self._crops(anchor, rng),
            "positive": self._crops(positive, rng),
            "lengths": self._lengths(anchor.size),
            "speakers": torch.from_numpy(classes),
            "labelled": torch.ones(anchor.size, dtype=torch.bool),
            "anchor_utterance": torch.from_numpy(anchor),
            "positive_utterance": torch.from_numpy(positive),
        }


class RegressionBatches(_StepBatches):
    """M distinct clips with one crop each and their teacher rows (the regression baseline).

    ``__getitem__(step)``: audio float32 [M, T], lengths int64 [M], teacher float32 [M, D],
    utterance int64 [M].
    """

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        store: AudioStore,
        teacher: np.ndarray,
        *,
        clips_per_batch: int = 200,
        crop_seconds: float = 2.0,
        augment: Augmenter,
        seed: int,
        rank: int = 0,
        steps: int,
    ) -> None:
        super().__init__(records, store, crop_seconds=crop_seconds, augment=augment, seed=seed, rank=rank, steps=steps)
        _check_teacher(teacher, records)
        self.teacher, self.clips_per_batch = teacher.astype(np.float32), clips_per_batch

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = self.rng(step)
        clips = _distinct(rng, len(self.records), min(self.clips_per_batch, len(self.records)), "clips")
        return {
            "audio": self._crops(clips, rng),
            "lengths": self._lengths(clips.size),
            "teacher": torch.from_numpy(self.teacher[clips]),
            "utterance": torch.from_numpy(clips),
        }
