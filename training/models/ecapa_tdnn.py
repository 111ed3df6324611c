"""ECAPA-TDNN (Desplanques, Thienpondt and Demuynck, "ECAPA-TDNN: Emphasized Channel Attention,
Propagation and Aggregation in TDNN Based Speaker Verification", Interspeech 2020), with its
log-mel front end inside the module so that the exported graph takes a waveform.

Layout (paper Fig. 2; layer sizes as SpeechBrain's and WeSpeaker's ``ECAPA_TDNN_c512/c1024``):
Conv1D(k=5)+ReLU+BN → three SE-Res2Blocks (k=3, dilation 2, 3, 4, Res2 scale 8, SE bottleneck
128) → multi-layer feature aggregation (concatenated block outputs, Conv1D 1×1 to 1536 + ReLU)
→ attentive statistics pooling with channel- and context-dependent attention → BN → Linear →
BN. Every block is "conv → ReLU → BN" as in the paper.

Padded batches: every layer that feeds a temporal convolution zeroes the frames past each row's
valid count, and the SE squeeze, the global context and the attentive pooling reduce over valid
frames only, so a row's embedding does not depend on how much padding the batch adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from training.frontends.logmel import LogMelFrontend
from training.models.base import Encoder
from training.models.masking import (
    apply_mask,
    frame_mask,
    masked_mean,
    masked_mean_std,
    masked_softmax,
    weighted_mean_std,
)


def build_frontend(frontend: Mapping[str, Any] | None, n_mels: int) -> LogMelFrontend:
    """A LogMelFrontend from config keys; its ``n_mels`` must agree with the encoder's."""
    kwargs = dict(frontend or {})
    if kwargs.setdefault("n_mels", n_mels) != n_mels:
        raise ValueError(f"frontend n_mels={kwargs['n_mels']} disagrees with the encoder's n_mels={n_mels}")
    return LogMelFrontend(**kwargs)


class Conv1dReluBn(nn.Module):
    """[B, C_in, T] → [B, C_out, T]: "same" Conv1D → ReLU → BN, padding frames zeroed after BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, padding=padding)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # BN's shift makes padding frames non-zero; the next temporal conv must see zeros there.
        return apply_mask(self.bn(torch.relu(self.conv(x))), mask)


class Res2Conv1dReluBn(nn.Module):
    """Res2Net's hierarchical split (Gao et al., 2019) over channels: [B, C, T] → [B, C, T].

    The input is cut into ``scale`` groups; group 0 passes through, group i > 0 is convolved after
    adding the previous group's output, widening the receptive field group by group.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int) -> None:
        super().__init__()
        if scale < 2 or channels % scale:
            raise ValueError(f"channels ({channels}) must be a multiple of res2 scale ({scale} >= 2)")
        width = channels // scale
        self.scale = scale
        self.blocks = nn.ModuleList(Conv1dReluBn(width, width, kernel_size, dilation) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        groups = torch.chunk(x, self.scale, dim=1)
        outputs, previous = [groups[0]], None
        for group, block in zip(groups[1:], self.blocks):
            previous = block(group if previous is None else group + previous, mask)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)


class SqueezeExcitation(nn.Module):
    """Channel gates from the masked time mean (Hu et al., 2018): [B, C, T] → [B, C, T]."""

    def __init__(self, channels: int, bottleneck: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        squeezed = masked_mean(x, mask)
        gates = torch.sigmoid(self.linear2(torch.relu(self.linear1(squeezed))))
        return x * gates.unsqueeze(-1)


class SERes2Block(nn.Module):
    """x + SE(Conv1×1(Res2(Conv1×1(x)))): the paper's SE-Res2Block, [B, C, T] → [B, C, T]."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int, se_channels: int) -> None:
        super().__init__()
        self.conv1 = Conv1dReluBn(channels, channels)
        self.res2 = Res2Conv1dReluBn(channels, kernel_size, dilation, scale)
        self.conv2 = Conv1dReluBn(channels, channels)
        self.se = SqueezeExcitation(channels, se_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.res2(self.conv1(x, mask), mask), mask)
        return x + self.se(out, mask)  # both terms are zero on padding frames


class AttentiveStatisticsPooling(nn.Module):
    """[B, C, T] + mask [B, T] → [B, 2C]: attention-weighted mean and std over valid frames.

    Channel-dependent attention with global context (paper eqs. 5-7): the attention network
    sees each frame concatenated with the utterance's mean and std, and gives a weight per
    channel and frame, ``α = softmax_t(W2 tanh(W1 [h_t; μ; σ]))``.
    """

    def __init__(self, channels: int, attention_channels: int = 128, global_context: bool = True) -> None:
        super().__init__()
        self.global_context = global_context
        inputs = 3 * channels if global_context else channels
        self.attention = nn.Conv1d(inputs, attention_channels, kernel_size=1)
        self.scores = nn.Conv1d(attention_channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        context = x
        if self.global_context:
            mean, std = masked_mean_std(x, mask)
            context = torch.cat([x, mean.unsqueeze(-1).expand_as(x), std.unsqueeze(-1).expand_as(x)], dim=1)
        weights = masked_softmax(self.scores(torch.tanh(self.attention(context))), mask)
        mean, std = weighted_mean_std(x, weights)
        return torch.cat([mean, std], dim=1)


class EcapaTdnn(Encoder):
    """waveform [B, T] float32 at 16 kHz + lengths [B] int64 → raw embeddings [B, embedding_dim].

    Not L2-normalised (export adds it). ``channels`` is the paper's C (512 or 1024);
    ``mfa_channels`` is the aggregation width (1536 in the paper for both sizes).
    """

    def __init__(
        self,
        channels: int = 512,
        embedding_dim: int = 192,
        n_mels: int = 80,
        attention_channels: int = 128,
        res2_scale: int = 8,
        se_channels: int = 128,
        frontend: Mapping[str, Any] | None = None,
        mfa_channels: int = 1536,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.frontend = build_frontend(frontend, n_mels)
        self.layer1 = Conv1dReluBn(n_mels, channels, kernel_size=5)
        self.blocks = nn.ModuleList(
            SERes2Block(channels, 3, dilation, res2_scale, se_channels) for dilation in (2, 3, 4)
        )
        self.mfa = nn.Conv1d(3 * channels, mfa_channels, kernel_size=1)
        self.pooling = AttentiveStatisticsPooling(mfa_channels, attention_channels)
        self.pooling_bn = nn.BatchNorm1d(2 * mfa_channels)
        self.linear = nn.Linear(2 * mfa_channels, embedding_dim)
        self.embedding_bn = nn.BatchNorm1d(embedding_dim)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frame_lengths = self.frontend(waveform, lengths)
        mask = frame_mask(frame_lengths, feats.shape[-1])
        out = self.layer1(feats, mask)
        aggregated = []
        for block in self.blocks:
            out = block(out, mask)
            aggregated.append(out)
        # The MFA conv is 1×1, so its (non-zero) padding frames only reach the masked pooling.
        hidden = torch.relu(self.mfa(torch.cat(aggregated, dim=1)))
        stats = self.pooling_bn(self.pooling(hidden, mask))
        return self.embedding_bn(self.linear(stats))
