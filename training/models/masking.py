"""Masked time reductions and length arithmetic shared by the padded-batch encoders.

Convention: feature maps are ``[B, C, T]`` or ``[B, C, F, T]`` (time last) and a mask is a bool
``[B, T]`` that is True on the frames holding real audio. Every temporal reduction goes through
these helpers, so that zero padding added by the gateway's batcher never changes an embedding.
"""

from __future__ import annotations

import torch

from training.frontends.logmel import frame_mask

__all__ = [
    "apply_mask",
    "conv_output_lengths",
    "frame_mask",
    "masked_mean",
    "masked_mean_std",
    "masked_softmax",
    "weighted_mean_std",
]


def _broadcast(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B, T] → [B, 1, …, 1, T] with x's rank."""
    for _ in range(x.dim() - 2):
        mask = mask.unsqueeze(1)
    return mask


def apply_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padding frames of x [B, …, T] (mask [B, T]); what a single request's conv padding holds."""
    return x.masked_fill(~_broadcast(mask, x), 0.0)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [B, C, T], mask [B, T] → mean over the valid frames, [B, C]."""
    m = _broadcast(mask, x)
    return x.masked_fill(~m, 0.0).sum(-1) / m.sum(-1).to(x.dtype)


def masked_mean_std(
    x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-7, correction: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, C, T], mask [B, T] → (mean, std) over the valid frames, each [B, C].

    ``correction`` is torch.var's (0: population, as SpeechBrain; 1: unbiased, as WeSpeaker's
    TSTP); the divisor is clamped at 1 so that a one-frame row stays finite. The variance is
    computed around the mean (not E[x²] − mean²) and clamped at ``eps`` before the square root.
    """
    m = _broadcast(mask, x)
    count = m.sum(-1).to(x.dtype)
    mean = x.masked_fill(~m, 0.0).sum(-1) / count
    centred = (x - mean.unsqueeze(-1)).masked_fill(~m, 0.0)
    var = centred.pow(2).sum(-1) / (count - correction).clamp(min=1.0)
    return mean, var.clamp(min=eps).sqrt()


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over time of logits [B, C, T], with exactly zero weight on padding frames.

    Every row has at least one valid frame (a front end gives ``1 + length // hop`` ≥ 1), so no
    row is all −inf.
    """
    return torch.softmax(logits.masked_fill(~_broadcast(mask, logits), float("-inf")), dim=-1)


def weighted_mean_std(x: torch.Tensor, weights: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, C, T], weights [B, C, T] summing to 1 over T → weighted (mean, std), each [B, C].

    Attentive statistics pooling (Okabe et al., 2018): μ = Σ α x, σ = sqrt(Σ α (x − μ)²).
    """
    mean = (weights * x).sum(-1)
    var = (weights * (x - mean.unsqueeze(-1)).pow(2)).sum(-1)
    return mean, var.clamp(min=eps).sqrt()


def conv_output_lengths(
    lengths: torch.Tensor, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> torch.Tensor:
    """Valid frames [B] after a convolution along time: ``⌊(L + 2p − d(k − 1) − 1) / s⌋ + 1``.

    This is the output length the conv gives a single request of L frames; in a padded batch
    those are exactly the outputs that see no frame past L other than zero padding.
    """
    span = dilation * (kernel_size - 1) + 1
    return torch.div(lengths + 2 * padding - span, stride, rounding_mode="floor") + 1
