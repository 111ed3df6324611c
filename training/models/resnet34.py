"""The ResNet34 speaker net with 32 base channels ("half" or "thin" ResNet34), with its log-mel
front end inside the module so that the exported graph takes a waveform.

ResNet (He et al., 2016) as used for speaker verification by Chung et al., "In defence of
metric learning for speaker recognition" (Interspeech 2020, the clova ``ResNetSE34V2`` family)
and WeSpeaker's ``ResNet34`` (Wang et al., ICASSP 2023): a 3×3 conv stem on the log-mel image
[B, 1, n_mels, frames], BasicBlock stages [3, 4, 6, 3] with channels [32, 64, 128, 256] and
strides [1, 2, 2, 2] (over frequency and time), temporal statistics pooling (mean and std over
time of the flattened channel × frequency map, WeSpeaker's "TSTP") and one linear layer.

Padded batches: each strided conv shrinks a row's valid frame count exactly as it shrinks a
single request's length (``conv_output_lengths``); after every BN/ReLU the frames past that count
are zeroed, and the pooling reduces over valid frames only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from training.models.base import Encoder
from training.models.ecapa_tdnn import build_frontend
from training.models.masking import apply_mask, conv_output_lengths, frame_mask, masked_mean_std

STAGE_BLOCKS = (3, 4, 6, 3)
STAGE_STRIDES = (1, 2, 2, 2)


class BasicBlock(nn.Module):
    """(x [B, C_in, F, T], frame lengths [B]) → (y [B, C_out, F', T'], frame lengths' [B])."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            # A 1×1 stride-s conv without padding keeps ⌊(T − 1)/s⌋ + 1 frames, as conv1 does.
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = conv_output_lengths(lengths, kernel_size=3, stride=self.stride, padding=1)
        out = self.conv1(x)
        mask = frame_mask(lengths, out.shape[-1])
        out = apply_mask(torch.relu(self.bn1(out)), mask)
        out = torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))
        return apply_mask(out, mask), lengths


class ResNet34(Encoder):
    """waveform [B, T] float32 at 16 kHz + lengths [B] int64 → raw embeddings [B, embedding_dim].

    Not L2-normalised (export adds it). Pooled dimension: 2 × 8·base_channels × ⌈n_mels / 8⌉.
    """

    def __init__(
        self,
        base_channels: int = 32,
        embedding_dim: int = 256,
        n_mels: int = 80,
        frontend: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.frontend = build_frontend(frontend, n_mels)
        self.conv1 = nn.Conv2d(1, base_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        blocks, channels, freq = [], base_channels, n_mels
        for stage, (count, stride) in enumerate(zip(STAGE_BLOCKS, STAGE_STRIDES)):
            out_channels = base_channels * 2**stage
            for index in range(count):
                blocks.append(BasicBlock(channels, out_channels, stride if index == 0 else 1))
                channels = out_channels
            freq = (freq - 1) // stride + 1  # what the stride-s, pad-1, 3×3 conv does to frequency
        self.blocks = nn.ModuleList(blocks)
        self.linear = nn.Linear(2 * channels * freq, embedding_dim)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frame_lengths = self.frontend(waveform, lengths)
        out = self.conv1(feats.unsqueeze(1))  # [B, C, n_mels, frames]
        out = apply_mask(torch.relu(self.bn1(out)), frame_mask(frame_lengths, out.shape[-1]))
        for block in self.blocks:
            out, frame_lengths = block(out, frame_lengths)
        out = out.flatten(1, 2)  # [B, C·F', T']: TSTP pools channels × frequency jointly
        mean, std = masked_mean_std(out, frame_mask(frame_lengths, out.shape[-1]))
        return self.linear(torch.cat([mean, std], dim=1))
