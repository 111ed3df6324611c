"""A mel spectrogram computed with a conv1d STFT, so that it exports to ONNX with both exporters.

It reproduces ``librosa.feature.melspectrogram`` (periodic Hann window, ``center=True`` with
zero padding as librosa >= 0.10 does, Slaney mel scale and area normalisation) to float32
rounding, which is what the pretrained Resemblyzer encoder was fed. ``torch.stft`` and
torchaudio's transform export only through the dynamo exporter and LSTM graphs need the
TorchScript one, hence the convolution.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / f_sp
    log_region = hz >= min_log_hz
    mel[log_region] = min_log_mel + np.log(hz[log_region] / min_log_hz) / logstep
    return mel


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * f_sp
    log_region = mel >= min_log_mel
    hz[log_region] = min_log_hz * np.exp(logstep * (mel[log_region] - min_log_mel))
    return hz


def slaney_mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """Triangular Slaney-normalised filters, shape [n_mels, n_fft // 2 + 1] (librosa's default)."""
    f_max = sample_rate / 2.0 if f_max is None else f_max
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_edges = _mel_to_hz_slaney(
        np.linspace(_hz_to_mel_slaney(np.array([f_min]))[0], _hz_to_mel_slaney(np.array([f_max]))[0], n_mels + 2)
    )
    widths = np.diff(mel_edges)
    ramps = mel_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    # Slaney area normalisation: each triangle integrates to (about) the same energy.
    weights *= (2.0 / (mel_edges[2:] - mel_edges[:-2]))[:, None]
    return weights.astype(np.float32)


def _stft_kernels(n_fft: int, win_length: int) -> np.ndarray:
    """Real and imaginary DFT rows times a periodic Hann window, shape [2 * (n_fft//2+1), 1, n_fft]."""
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    offset = (n_fft - win_length) // 2  # librosa centres a short window inside the FFT frame
    padded = np.zeros(n_fft)
    padded[offset : offset + win_length] = window
    angle = 2.0 * np.pi * np.outer(np.arange(n_fft // 2 + 1), np.arange(n_fft)) / n_fft
    kernels = np.concatenate([np.cos(angle) * padded, -np.sin(angle) * padded])
    return kernels[:, None, :].astype(np.float32)


class MelSpectrogram(nn.Module):
    """Waveform [B, T] float32 → mel spectrogram [B, frames, n_mels], frames = 1 + T // hop.

    ``power=2`` gives the power mel spectrogram (Resemblyzer); ``log=True`` applies
    ``log(mel + log_eps)`` for log-mel front ends.
    """

    kernels: torch.Tensor  # buffers (register_buffer), declared for the type checker
    filterbank: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 40,
        win_length: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = None,
        log: bool = False,
        log_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.n_mels = n_fft, hop_length, n_mels
        self.log, self.log_eps = log, log_eps
        self.register_buffer("kernels", torch.from_numpy(_stft_kernels(n_fft, win_length or n_fft)), persistent=False)
        fb = slaney_mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
        self.register_buffer("filterbank", torch.from_numpy(np.ascontiguousarray(fb.T)), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        x = F.pad(waveform, (half, half)).unsqueeze(1)  # center=True with zeros, as librosa >= 0.10
        spec = F.conv1d(x, self.kernels, stride=self.hop_length)  # [B, 2 * bins, frames]
        bins = half + 1
        power = spec[:, :bins] ** 2 + spec[:, bins:] ** 2
        mel = torch.matmul(power.transpose(1, 2), self.filterbank)
        return torch.log(mel + self.log_eps) if self.log else mel
