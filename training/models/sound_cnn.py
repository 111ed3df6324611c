"""A log-mel CNN for environmental sounds (METHODS §4), front end inside the module so that the
exported graph takes a waveform.

Layout: the VGG-like stack of PANNs' CNN14 (Kong et al., "PANNs: Large-Scale Pretrained Audio
Neural Networks for Audio Pattern Recognition", 2020), narrower and shallower by default:

    waveform [B, T] → log-mel [B, n_mels, frames] → level normalisation → BN over mel bands
    → blocks of (3×3 conv → BN → ReLU) × 2, a 2×2 max pool after every block but the last
    → mean over frequency → masked mean ⊕ masked max over time → dropout → Linear → [B, D]

Front end (``SOUND_FRONTEND``): 64 mel bands from 0 Hz to the Nyquist frequency (f_max =
sample_rate / 2), 25 ms Hann windows every 10 ms in a 512-point FFT, as in PANNs and most
ESC-50 / UrbanSound8K baselines at 16 kHz. Unlike the speaker front end there is **no** per-band
mean normalisation over time: it would subtract each band's average level and so erase the
spectral slope that tells coloured-noise classes (and many real sounds) apart. Instead, each
clip's overall mean log-mel level (one number over all bands and valid frames) is subtracted,
which makes the embedding invariant to the recording's gain while keeping its spectral shape,
and a BatchNorm over mel bands (CNN14's ``bn0``) standardises the bands.

Padded batches (same contract as the speaker encoders): every block zeroes the frames past each
row's valid count after each BN/ReLU. The 2×2 max pool runs with ``ceil_mode`` so that a one-
frame clip survives any depth; its last window of a row with an odd frame count sees one padding
frame, which is 0 and can never beat the post-ReLU (≥ 0) values it is compared with, so a row
pooled in a padded batch equals the row pooled alone. The pooled count is ``⌈L / 2⌉``.
The time pooling reduces over valid frames only (−inf fill for the max).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training.models.base import Encoder
from training.models.ecapa_tdnn import build_frontend
from training.models.masking import apply_mask, frame_mask, masked_mean

# LogMelFrontend arguments for sounds; a model's ``frontend`` mapping overrides any of them.
SOUND_FRONTEND: dict[str, Any] = {
    "win_ms": 25.0,
    "hop_ms": 10.0,
    "n_fft": 512,
    "f_min": 0.0,
    "f_max": None,
    "mean_norm": False,
}


def pooled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Valid frames [B] after a 2-wide, stride-2 max pool with ``ceil_mode``: ``⌈L / 2⌉``."""
    return torch.div(lengths + 1, 2, rounding_mode="floor")


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [B, C, T], mask [B, T] → max over the valid frames, [B, C] (every row has one)."""
    return x.masked_fill(~mask[:, None, :], float("-inf")).amax(-1)


class ConvBlock(nn.Module):
    """(x [B, C_in, F, T], frame lengths [B]) → (y [B, C_out, F', T'], frame lengths' [B]).

    (3×3 conv → BN → ReLU) × 2, then a 2×2 max pool (ceil mode) when ``pool``.
    """

    def __init__(self, in_channels: int, out_channels: int, pool: bool) -> None:
        super().__init__()
        self.pool = pool
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = frame_mask(lengths, x.shape[-1])
        # BN's shift makes padding frames non-zero; the next 3×3 conv must see zeros there.
        out = apply_mask(torch.relu(self.bn1(self.conv1(x))), mask)
        out = apply_mask(torch.relu(self.bn2(self.conv2(out))), mask)
        if not self.pool:
            return out, lengths
        return F.max_pool2d(out, 2, ceil_mode=True), pooled_lengths(lengths)


class SoundCnn(Encoder):
    """waveform [B, T] float32 + lengths [B] int64 → raw embeddings [B, embedding_dim].

    Not L2-normalised (export adds it); the classification head of training lives in the recipe
    (``training/recipes/sound.py``), not here. ``channels`` are the blocks' widths
    (CNN14 uses 64…2048 over six blocks; the defaults suit ESC-50 on a GPU, the CPU recipes
    use (16, 32, 64, 128)). ``frontend`` overrides ``SOUND_FRONTEND`` / LogMelFrontend
    arguments (e.g. ``sample_rate``); its ``n_mels`` must equal ``n_mels``. ``level_norm``
    subtracts each clip's mean log-mel level (gain invariance, see the module docstring).
    """

    def __init__(
        self,
        n_mels: int = 64,
        channels: Sequence[int] = (32, 64, 128, 256),
        embedding_dim: int = 128,
        frontend: Mapping[str, Any] | None = None,
        dropout: float = 0.1,
        level_norm: bool = True,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive widths, got {channels}")
        self.embedding_dim, self.level_norm = embedding_dim, level_norm
        self.frontend = build_frontend({**SOUND_FRONTEND, **dict(frontend or {})}, n_mels)
        self.input_bn = nn.BatchNorm1d(n_mels)
        widths = (1, *channels)
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], pool=i < len(channels) - 1) for i in range(len(channels))
        )
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(2 * channels[-1], embedding_dim)

    @property
    def sample_rate(self) -> int:
        return int(self.frontend.sample_rate)

    def features(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mel [B, n_mels, frames] (padding frames 0) and frame lengths [B]."""
        feats, frame_lengths = self.frontend(waveform, lengths)
        mask = frame_mask(frame_lengths, feats.shape[-1])
        if self.level_norm:
            # Padding frames are 0, so the sum over all bands and frames is the valid sum.
            count = (frame_lengths * feats.shape[1]).to(feats.dtype)
            feats = feats - (feats.sum(dim=(1, 2)) / count)[:, None, None]
        return apply_mask(self.input_bn(feats), mask), frame_lengths

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, frame_lengths = self.features(waveform, lengths)
        out = out.unsqueeze(1)  # [B, 1, n_mels, frames]
        for block in self.blocks:
            out, frame_lengths = block(out, frame_lengths)
        out = out.mean(dim=2)  # [B, C, T']: each frame averaged over frequency only
        mask = frame_mask(frame_lengths, out.shape[-1])
        pooled = torch.cat([masked_mean(out, mask), masked_max(out, mask)], dim=1)
        return self.linear(self.dropout(pooled))
