"""Kaldi's log mel filterbank (``compute-fbank-feats`` defaults) as one strided convolution, for
padded batches and ONNX.

The features are those of ``torchaudio.compliance.kaldi.fbank`` / kaldi-native-fbank with
3D-Speaker's settings (``speakerlab/process/processor.py``, ``FBank``): 16 kHz, 25 ms frames
every 10 ms with ``snip_edges`` (a frame only where 400 whole samples exist), dither 0, DC
offset removed per frame, pre-emphasis 0.97, Povey window, 512-point power spectrum, 80
triangular mel bands from 20 Hz to Nyquist (Kaldi's ``MelBanks``: the Nyquist bin has weight
0), natural log floored at float32 epsilon, then mean normalisation over the utterance.

Why a convolution: DC removal, pre-emphasis, window and the real DFT are all linear in a frame's
400 samples, so their product is one [514, 400] matrix applied every 160 samples — a single
``Conv1d`` with stride 160, which exports to one ONNX ``Conv`` node with dynamic batch and time.
The matrix is composed in float64 and stored in float32.

Padded batches: a row of ``L`` samples has ``1 + (L - 400) // 160`` frames whatever follows it,
because every frame only reads its own 400 samples; the mean is taken over those frames and the
later ones are zeroed, as ``training.frontends.logmel`` does for the other encoders.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from training.frontends.logmel import frame_mask

FLOAT_EPSILON = float(np.finfo(np.float32).eps)  # Kaldi's floor before the log


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] float64 triangular weights, as Kaldi's ``MelBanks`` (mel domain
    triangles, bins 0 … n_fft/2 − 1; the Nyquist row is 0)."""
    mel_low, mel_high = _mel(low_hz), _mel(high_hz)
    delta = (mel_high - mel_low) / (n_mels + 1)
    bin_mel = _mel(np.arange(n_fft // 2) * sample_rate / n_fft)
    banks = np.zeros((n_fft // 2 + 1, n_mels))
    for m in range(n_mels):
        left, centre, right = mel_low + m * delta, mel_low + (m + 1) * delta, mel_low + (m + 2) * delta
        rising = (bin_mel - left) / (centre - left)
        falling = (right - bin_mel) / (right - centre)
        inside = (bin_mel > left) & (bin_mel < right)
        banks[: n_fft // 2, m] = np.where(inside, np.where(bin_mel <= centre, rising, falling), 0.0)
    return banks


def frame_to_spectrum_matrix(frame: int, n_fft: int, preemphasis: float) -> np.ndarray:
    """[2 · (n_fft // 2 + 1), frame] float64: DC removal → pre-emphasis → Povey window → real DFT
    (real parts, then imaginary parts) of a frame zero-padded to ``n_fft``."""
    eye = np.eye(frame)
    dc = eye - np.full((frame, frame), 1.0 / frame)
    # Kaldi: x[i] -= p · x[i−1] for i > 0, and x[0] -= p · x[0].
    emphasis = eye - preemphasis * np.eye(frame, k=-1)
    emphasis[0, 0] = 1.0 - preemphasis
    n = np.arange(frame)
    povey = (0.5 - 0.5 * np.cos(2 * math.pi * n / (frame - 1))) ** 0.85
    bins = np.arange(n_fft // 2 + 1)
    angle = 2 * math.pi * np.outer(bins, n) / n_fft
    dft = np.concatenate([np.cos(angle), -np.sin(angle)])
    return dft @ np.diag(povey) @ emphasis @ dc


class KaldiFbank(nn.Module):
    """waveform [B, T] float32 in [−1, 1] + lengths [B] int64 → (fbank [B, n_mels, frames],
    frame_lengths [B]); ``frames = 1 + (T − frame) // hop``, padding frames exactly 0."""

    spectrum: torch.Tensor  # buffers (register_buffer), declared for the type checker
    banks: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        frame_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int = 512,
        low_hz: float = 20.0,
        high_hz: float | None = None,
        preemphasis: float = 0.97,
        mean_norm: bool = True,
    ) -> None:
        super().__init__()
        self.frame = int(sample_rate * frame_ms / 1000)
        self.hop = int(sample_rate * hop_ms / 1000)
        if not 0 < self.frame <= n_fft:
            raise ValueError(f"need 0 < frame ({self.frame}) <= n_fft ({n_fft})")
        self.n_bins, self.mean_norm = n_fft // 2 + 1, mean_norm
        matrix = frame_to_spectrum_matrix(self.frame, n_fft, preemphasis)
        self.register_buffer("spectrum", torch.from_numpy(matrix).float()[:, None, :], persistent=False)
        banks = kaldi_mel_banks(n_mels, n_fft, sample_rate, low_hz, high_hz or sample_rate / 2)
        self.register_buffer("banks", torch.from_numpy(banks.T).float(), persistent=False)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Samples [B] → whole frames [B] (0 below one frame)."""
        return (torch.div(lengths - self.frame, self.hop, rounding_mode="floor") + 1).clamp(min=0)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spectrum = torch.nn.functional.conv1d(waveform[:, None, :], self.spectrum, stride=self.hop)
        real, imag = spectrum[:, : self.n_bins], spectrum[:, self.n_bins :]
        power = real * real + imag * imag  # [B, bins, frames]
        feats = torch.matmul(self.banks, power).clamp(min=FLOAT_EPSILON).log()  # [B, n_mels, frames]
        frame_lengths = self.frame_lengths(lengths)
        valid = frame_mask(frame_lengths, feats.shape[-1])[:, None, :]
        if self.mean_norm:
            count = frame_lengths.clamp(min=1).to(feats.dtype)[:, None, None]
            feats = feats - feats.masked_fill(~valid, 0.0).sum(-1, keepdim=True) / count
        return feats.masked_fill(~valid, 0.0), frame_lengths
