"""One suite, both inference backends (DESIGN §3): what the gateway relies on from any backend."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.waveforms import waveform_batch
from serving.errors import InvalidInput, Unavailable

KEY = "speaker/1"


def _clips(lengths, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(max(lengths)) / 16000
    voiced = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return [(voiced[:n] + 0.02 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


@pytest.fixture
def loaded(make_backend, speaker_model):
    backend = make_backend()
    backend.load(KEY, speaker_model)
    return backend


def test_ready_only_once_loaded(make_backend, speaker_model):
    backend = make_backend()
    assert not backend.ready(KEY)
    backend.load(KEY, speaker_model)
    assert backend.ready(KEY)
    assert not backend.ready("other/1")


def test_a_padded_batch_of_different_lengths_matches_single_requests(loaded, speaker_model):
    clips = _clips([16000, 23500, 40000, 17001])
    batch = loaded.embed(KEY, waveform_batch(clips))
    assert batch.shape == (4, speaker_model.card.embedding_dim) and batch.dtype == np.float32
    singles = np.concatenate([loaded.embed(KEY, waveform_batch([c])) for c in clips])
    assert np.abs(batch - singles).max() <= 1e-5
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_batches_larger_than_the_models_limit_still_work(loaded, speaker_model):
    clips = _clips([16000 + 50 * i for i in range(speaker_model.card.max_batch_size + 3)], seed=1)
    out = loaded.embed(KEY, waveform_batch(clips))
    assert out.shape == (len(clips), speaker_model.card.embedding_dim)
    assert np.abs(out[-1] - loaded.embed(KEY, waveform_batch(clips[-1:]))[0]).max() <= 1e-5


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: {"waveform": f["waveform"]}, "missing input 'lengths'"),
        (lambda f: {**f, "waveform": f["waveform"].astype(np.float64)}, "must be float32"),
        (lambda f: {**f, "lengths": f["lengths"].astype(np.int32)}, "must be int64"),
        (lambda f: {**f, "waveform": f["waveform"][0]}, "with 2 dims"),
    ],
)
def test_missing_or_ill_typed_inputs_are_invalid(loaded, change, message):
    feeds = waveform_batch(_clips([16000, 20000]))
    with pytest.raises(InvalidInput, match=message):
        loaded.embed(KEY, change(feeds))


def test_an_unloaded_model_is_unavailable(make_backend):
    with pytest.raises(Unavailable, match="not loaded"):
        make_backend().embed(KEY, waveform_batch(_clips([16000])))
