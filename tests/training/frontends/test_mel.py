"""The conv1d mel front end against librosa (which Resemblyzer and most recipes use)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.frontends.mel import MelSpectrogram, slaney_mel_filterbank

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize(
    "rate,n_fft,n_mels,f_min,f_max",
    [(16000, 400, 40, 0.0, None), (16000, 512, 80, 20.0, 7600.0), (8000, 256, 24, 0.0, None)],
)
def test_filterbank_matches_librosa(rate, n_fft, n_mels, f_min, f_max):
    ours = slaney_mel_filterbank(rate, n_fft, n_mels, f_min, f_max)
    ref = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "n_fft,win,hop,length", [(400, None, 160, 16000), (512, 400, 160, 12345), (400, None, 160, 399)]
)
def test_power_mel_matches_librosa(n_fft, win, hop, length):
    x = (np.random.default_rng(length).standard_normal(length) * 0.1).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=40).T
    got = MelSpectrogram(16000, n_fft, hop, 40, win_length=win)(torch.from_numpy(x)[None])[0].numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-5 * ref.max())


def test_log_mel_and_batch_rows_are_independent():
    mel = MelSpectrogram(log=True)
    x = torch.randn(3, 8000)
    batch = mel(x)
    for row in range(3):
        torch.testing.assert_close(batch[row], mel(x[row : row + 1])[0], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(mel(torch.zeros(1, 800))).all()
