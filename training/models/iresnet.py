"""A small IResNet face embedder for aligned crops (METHODS §5), normalisation inside the module.

The "improved" residual network of ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss
for Deep Face Recognition", 2019; the ``iresnet`` of insightface's ``arcface_torch``): a 3×3
stem (BN → PReLU) at full resolution, stages of pre-activation-style ``IBasicBlock``s
(BN → 3×3 conv → BN → PReLU → 3×3 conv (stride) → BN, plus a 1×1-conv shortcut where the shape
changes), then BN → flatten → dropout → Linear → BN1d as the embedding (the "E" output block,
no global pooling, so the embedding keeps where on the face a feature was).

Input: RGB uint8 (or float in 0..255) NHWC [N, H, W, 3], the served layout of a face chip;
``(x − 127.5) / 127.5`` and NHWC → NCHW happen here, so the exported graph takes the chip as
is. ``input_downsample`` > 1 average-pools the chip first (e.g. 112 → 56): the CPU recipes
train at a quarter of the pixels, an IResNet50-like configuration leaves it at 1. Output: raw
(not normalised) embeddings [N, embedding_dim].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class IBasicBlock(nn.Module):
    """x [N, C_in, H, W] → [N, C_out, ⌈H/s⌉, ⌈W/s⌉]."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=1e-5)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=1e-5)
        self.prelu = nn.PReLU(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, eps=1e-5)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels, eps=1e-5),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + self.shortcut(x)


class IResNet(nn.Module):
    """chip [N, H, W, 3] RGB 0..255 → raw embedding [N, embedding_dim].

    layers: blocks per stage (IResNet50 is (3, 4, 14, 3) at widths (64, 128, 256, 512)); every
    stage halves the resolution (its first block has stride 2). input_size: the chip side
    the Linear layer is sized for (the model refuses other sizes).
    """

    def __init__(
        self,
        layers: Sequence[int] = (1, 1, 1, 1),
        widths: Sequence[int] = (16, 32, 64, 128),
        embedding_dim: int = 128,
        input_size: int = 112,
        input_downsample: int = 2,
        stem_channels: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths) or not layers or min(layers) < 1:
            raise ValueError(f"layers and widths must be equally long and non-empty, got {layers}, {widths}")
        if input_downsample < 1 or input_size % input_downsample:
            raise ValueError(f"input_downsample must divide input_size, got {input_downsample}, {input_size}")
        self.input_size, self.input_downsample, self.embedding_dim = input_size, input_downsample, embedding_dim
        stem = stem_channels or widths[0]
        self.pool = nn.AvgPool2d(input_downsample) if input_downsample > 1 else nn.Identity()
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem, eps=1e-5), nn.PReLU(stem)
        )
        blocks, channels, side = [], stem, input_size // input_downsample
        for count, width in zip(layers, widths):
            for i in range(count):
                blocks.append(IBasicBlock(channels, width, stride=2 if i == 0 else 1))
                channels = width
            side = (side + 1) // 2  # 3×3, stride 2, padding 1: ⌈side / 2⌉
        self.blocks = nn.Sequential(*blocks)
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * side * side, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=1e-5)

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        if (
            chip.dim() != 4
            or chip.shape[-1] != 3
            or chip.shape[1] != self.input_size
            or chip.shape[2] != self.input_size
        ):
            raise ValueError(f"expected chips [N, {self.input_size}, {self.input_size}, 3], got {tuple(chip.shape)}")
        x = (chip.float() - 127.5) / 127.5
        x = self.pool(x.permute(0, 3, 1, 2))
        x = self.bn2(self.blocks(self.stem(x)))
        return self.features(self.fc(self.dropout(torch.flatten(x, 1))))
