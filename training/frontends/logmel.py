"""The log-mel front end of the trained speaker encoders, for padded batches.

80 log-mel bands, 25 ms Hann windows every 10 ms in a 512-point FFT, 20-7600 Hz (the usual
speaker-verification features, e.g. Desplanques et al., 2020; Chung et al., 2020), then mean
normalisation over time. Each row of a batch carries its own length: frames are computed from
the zero-padded waveform, so a row's first ``1 + length // hop`` frames equal those of the row
alone (the centred STFT of a single request pads with zeros too), its mean is taken over those
frames only, and later frames are zeroed so that convolutions downstream see what a single
request's zero padding would show them.
"""

from __future__ import annotations

import torch
from torch import nn

from training.frontends.mel import MelSpectrogram


def frame_mask(frame_lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """frame_lengths [B] int64 → bool [B, frames], True for the frames that hold real audio."""
    return torch.arange(frames, device=frame_lengths.device)[None, :] < frame_lengths[:, None]


class LogMelFrontend(nn.Module):
    """waveform [B, T] float32 + lengths [B] int64 → (log-mel [B, n_mels, frames], frame_lengths [B]).

    ``frames = 1 + T // hop`` and ``frame_lengths = 1 + lengths // hop``; frames past a row's
    count are exactly 0. ``lengths[b] <= T`` is the caller's promise (samples past it are ignored).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        win_ms: float = 25,
        hop_ms: float = 10,
        n_fft: int = 512,
        f_min: float = 20.0,
        f_max: float | None = 7600.0,
        log_eps: float = 1e-6,
        mean_norm: bool = True,
    ) -> None:
        super().__init__()
        win = int(round(sample_rate * win_ms / 1000))
        self.hop = int(round(sample_rate * hop_ms / 1000))
        if not 0 < win <= n_fft or self.hop <= 0:
            raise ValueError(f"need 0 < window ({win}) <= n_fft ({n_fft}) and hop > 0 ({self.hop})")
        self.sample_rate, self.n_mels, self.mean_norm = sample_rate, n_mels, mean_norm
        self.mel = MelSpectrogram(sample_rate, n_fft, self.hop, n_mels, win, f_min, f_max, log=True, log_eps=log_eps)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Samples [B] → valid frames [B]: the frame count of a centred STFT of that many samples."""
        return 1 + torch.div(lengths, self.hop, rounding_mode="floor")

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        samples = torch.arange(waveform.shape[1], device=waveform.device)[None, :] < lengths[:, None]
        # Whatever the caller left past a row's end must look like the zeros a single request pads with.
        feats = self.mel(waveform.masked_fill(~samples, 0.0)).transpose(1, 2)  # [B, n_mels, frames]
        frame_lengths = self.frame_lengths(lengths)
        valid = frame_mask(frame_lengths, feats.shape[-1])[:, None, :]
        if self.mean_norm:
            count = frame_lengths.to(feats.dtype)[:, None, None]
            feats = feats - feats.masked_fill(~valid, 0.0).sum(-1, keepdim=True) / count
        return feats.masked_fill(~valid, 0.0), frame_lengths
