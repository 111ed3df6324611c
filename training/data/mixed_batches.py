"""Batches that mix corpus clips with formula clips (a mixed sound recipe's training data).

Each step concatenates a ``ClipBatches`` batch (labelled everyday sounds, augmented) and a
``FormulaBatches`` batch whose labels are shifted by ``label_offset`` (the corpus's class
count), so one head learns both label sets and the encoder keeps what formula pre-training gave
it while it learns real-world sound types. A pure function of the step, like both parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from training.data.few_shot import ClipBatches
    from training.data.formula_batches import FormulaBatches


class MixedBatches(torch.utils.data.Dataset):
    """Item ``step``: waveform float32 [B, T], lengths int64 [B], labels int64 [B] — the corpus
    rows first, then the formula rows (labels + ``label_offset``)."""

    def __init__(self, clips: ClipBatches, formula: FormulaBatches, *, label_offset: int) -> None:
        if len(clips) != len(formula):
            raise ValueError(f"the two parts have {len(clips)} and {len(formula)} steps")
        corpus_samples = clips.store.crop_samples(clips.crop_seconds)
        if corpus_samples != formula.clip_samples:
            raise ValueError(f"clip lengths differ: {corpus_samples} and {formula.clip_samples} samples")
        self.clips, self.formula, self.label_offset = clips, formula, label_offset

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        a, b = self.clips[step], self.formula[step]
        return {
            "waveform": torch.cat([a["waveform"], b["waveform"]]),
            "lengths": torch.cat([a["lengths"], b["lengths"]]),
            "labels": torch.cat([a["labels"], b["labels"] + self.label_offset]),
        }
