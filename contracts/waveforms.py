"""Waveform batches with lengths: the input contract of every waveform model (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def waveform_batch(clips: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """``waveform`` [B, T] float32, zero-padded to the longest clip, and ``lengths`` [B] int64
    (valid samples per row). The graphs mask by ``lengths``, so padding never changes an
    embedding: a padded batch gives the same rows as single requests."""
    if not len(clips):
        raise ValueError("a waveform batch needs at least one clip")
    lengths = np.fromiter((len(c) for c in clips), dtype=np.int64, count=len(clips))
    batch = np.zeros((len(clips), int(lengths.max())), dtype=np.float32)
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = clip
    return {"waveform": batch, "lengths": lengths}
