"""Formula batches (METHODS §4's pre-training data): balanced labels, fresh and pure per step."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from training.data.formula_batches import FormulaBatches, balanced_labels
from training.methods.closed_form_pretraining import D3, DALL

SR = 16000


def test_balanced_labels() -> None:
    rng = np.random.default_rng(0)
    for classes, batch in ((16, 40), (56, 56), (24, 8), (3, 1)):
        labels = balanced_labels(classes, batch, rng)
        counts = Counter(labels.tolist())
        assert labels.dtype == np.int64 and labels.size == batch
        assert max(counts.values()) - (min(counts.values()) if len(counts) == classes else 0) <= 1
        assert sum(counts.values()) == batch and set(counts) <= set(range(classes))


def _batches(**kw) -> FormulaBatches:
    args = dict(batch_size=12, clip_seconds=0.25, sample_rate=SR, seed=3, steps=50)
    return FormulaBatches(DALL(), **{**args, **kw})


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_formula_batches_are_fresh_per_step_and_pure() -> None:
    batches = _batches()
    b = batches[4]
    assert b["waveform"].shape == (12, 4000) and b["waveform"].dtype == torch.float32
    assert torch.equal(b["lengths"], torch.full((12,), 4000))
    assert b["labels"].dtype == torch.int64 and len(set(b["labels"].tolist())) == 12
    rms, peak = b["waveform"].pow(2).mean(dim=1).sqrt(), b["waveform"].abs().amax(dim=1)
    assert torch.all(rms <= 0.1001) and torch.all(peak <= 0.99)
    d1 = b["labels"] < 16  # Gaussian noise never reaches the peak limit: exactly level_rms
    assert d1.any() and torch.allclose(rms[d1], torch.full((int(d1.sum()),), 0.1), rtol=1e-3)
    assert _same(b, _batches()[4])
    for other in (batches[5], _batches(rank=1)[4], _batches(seed=4)[4]):
        assert not torch.equal(b["waveform"], other["waveform"])
    balanced = _batches(batch_size=112)[0]["labels"]
    assert Counter(balanced.tolist()) == {c: 2 for c in range(56)}
    assert len(batches) == 50
    with pytest.raises(IndexError):
        batches[50]


def test_dataloader_workers_give_the_single_process_batches() -> None:
    batches = FormulaBatches(D3(), batch_size=4, clip_seconds=0.1, sample_rate=SR, seed=0, steps=6)
    serial = list(DataLoader(batches, batch_size=None, sampler=range(2, 6), num_workers=0))
    parallel = list(DataLoader(batches, batch_size=None, sampler=range(2, 6), num_workers=2))
    assert len(serial) == 4 and all(_same(a, b) for a, b in zip(serial, parallel))
