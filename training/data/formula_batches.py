"""Step-indexed, class-balanced batches of formula sounds (METHODS §4's pre-training data).

The class sets themselves (what a formula sound is) are the method's and live in
``training.methods.closed_form_pretraining``; this module only turns one into the trainer's
batches, a pure function of (seed, rank, step) like ``training.data.speaker_batches``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # data does not depend on the methods at run time, only on this shape
    from training.methods.closed_form_pretraining import FormulaDataset


def balanced_labels(n_classes: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Labels int64 [batch_size], shuffled: every class ⌊B/C⌋ times, plus B mod C distinct
    classes drawn at random once more (so no class is ever more than one item ahead)."""
    whole = np.tile(np.arange(n_classes), batch_size // n_classes)
    extra = rng.choice(n_classes, size=batch_size % n_classes, replace=False)
    return rng.permutation(np.concatenate([whole, extra])).astype(np.int64)


class FormulaBatches(torch.utils.data.Dataset):
    """Class-balanced batches of formula sounds, a pure function of (seed, rank, step).

    Item ``step`` is the whole batch: waveform float32 [B, T] with T = round(clip_seconds ·
    sample_rate), lengths int64 [B] (all T), labels int64 [B] (``balanced_labels``). Each step
    draws fresh clips from a generator seeded by (seed, rank, step) — METHODS §4's "generated on
    the fly with fresh seeds" — so resuming, DDP ranks and DataLoader workers behave as in
    training.data.speaker_batches. Clips are scaled to an RMS of ``level_rms`` (0.1 ≈ a
    recorded clip's level, so the front end sees pre-training and fine-tuning input at similar
    levels), or less where a peak would otherwise pass 0.99.
    """

    def __init__(
        self,
        dataset: FormulaDataset,
        *,
        batch_size: int,
        clip_seconds: float,
        sample_rate: int,
        seed: int,
        rank: int = 0,
        steps: int,
        level_rms: float = 0.1,
    ) -> None:
        if batch_size < 1 or clip_seconds <= 0 or sample_rate <= 0:
            raise ValueError("batch_size, clip_seconds and sample_rate must be positive")
        if steps < 0 or rank < 0:
            raise ValueError(f"steps and rank must be non-negative, got {steps}, {rank}")
        self.dataset, self.batch_size, self.clip_seconds = dataset, batch_size, clip_seconds
        self.sample_rate, self.seed, self.rank, self.steps = sample_rate, seed, rank, steps
        self.level_rms = level_rms

    def __len__(self) -> int:
        return self.steps

    @property
    def clip_samples(self) -> int:
        return max(1, round(self.clip_seconds * self.sample_rate))

    def rng(self, step: int) -> np.random.Generator:
        """The generator that builds batch ``step`` (depends on seed, rank and step only)."""
        if not 0 <= step < self.steps:
            raise IndexError(f"step {step} outside [0, {self.steps})")
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.rank, step]))

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = self.rng(step)
        labels = balanced_labels(self.dataset.n_classes, self.batch_size, rng)
        n = self.clip_samples
        out = np.empty((self.batch_size, n), dtype=np.float32)
        for row, label in enumerate(labels.tolist()):
            x = self.dataset.sample(label, rng, n, self.sample_rate)
            # A recording cannot exceed full scale: impulsive clips (D3 bursts) end up quieter.
            peak = float(np.max(np.abs(x)))
            out[row] = x * min(self.level_rms, 0.99 / peak if peak > 0 else self.level_rms)
        return {
            "waveform": torch.from_numpy(out),
            "lengths": torch.full((self.batch_size,), n, dtype=torch.long),
            "labels": torch.from_numpy(labels),
        }
