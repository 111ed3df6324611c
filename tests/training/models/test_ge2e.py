"""Our GE2E module reproduces Resemblyzer's whole-utterance embedding, batched and padded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.models.ge2e import GE2EEncoder

resemblyzer = pytest.importorskip("resemblyzer")


@pytest.fixture(scope="module")
def encoder() -> GE2EEncoder:
    from export.importers.resemblyzer_ge2e import load_pretrained

    return load_pretrained()


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=400_000))
def test_window_count_matches_compute_partial_slices(n):
    _, mel_slices = resemblyzer.VoiceEncoder.compute_partial_slices(n, rate=1.3, min_coverage=0.75)
    count = GE2EEncoder()._partial_counts(torch.tensor([n]))
    assert int(count.item()) == len(mel_slices)


def test_equals_embed_utterance_and_padding_is_harmless(encoder, voices):
    import io

    import soundfile as sf

    reference = resemblyzer.VoiceEncoder("cpu", verbose=False)
    clips = [resemblyzer.preprocess_wav(sf.read(io.BytesIO(voices.clip(i, 0)), dtype="float32")[0]) for i in range(3)]
    clips.append(clips[0][:9000])  # shorter than one window: a single zero-padded window
    lengths = torch.tensor([len(c) for c in clips])
    batch = torch.zeros(len(clips), int(lengths.max()))
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = torch.from_numpy(clip)
    with torch.no_grad():
        batched = encoder(batch, lengths).numpy()
        single = [encoder(torch.from_numpy(c)[None], torch.tensor([len(c)]))[0].numpy() for c in clips]
    for row, clip in enumerate(clips):
        assert float(reference.embed_utterance(clip) @ single[row]) > 0.9999
        np.testing.assert_allclose(batched[row], single[row], atol=1e-5)
        assert abs(np.linalg.norm(batched[row]) - 1) < 1e-5


def test_volume_is_raised_but_never_lowered(encoder):
    x = torch.randn(1, 32000)  # RMS 1 = 0 dBFS before scaling
    lengths = torch.tensor([32000])
    with torch.no_grad():
        at_50db, at_60db = encoder(x * 10**-2.5, lengths), encoder(x * 10**-3, lengths)
        at_20db, at_10db = encoder(x * 0.1, lengths), encoder(x * 10**-0.5, lengths)
    torch.testing.assert_close(at_50db, at_60db, atol=1e-4, rtol=0)  # both raised to -30 dBFS
    assert (at_20db - at_10db).abs().max() > 1e-3  # louder than -30 dBFS: left as it is
