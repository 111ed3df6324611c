"""Gaussian pieces of the VAE bounds: closed-form KLs, log densities, the reparameterised sample."""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def kl_to_unit_gaussian(mu: Tensor, logvar: Tensor, mean: Tensor | None = None) -> Tensor:
    """KL( N(mu, diag(exp(logvar))) ‖ N(mean, I) ) per row [B] (``mean`` None: the origin).

    = ½ Σ_d (σ² + (μ − m)² − 1 − log σ²).
    """
    diff = mu if mean is None else mu - mean
    return 0.5 * (logvar.exp() + diff.pow(2) - 1.0 - logvar).sum(-1)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last axis."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def log_unit_normal(z: Tensor, mean: Tensor | None = None) -> Tensor:
    """log N(z; mean, I), summed over the last axis."""
    diff = z if mean is None else z - mean
    return -0.5 * (LOG_2PI + diff.pow(2)).sum(-1)


def reparameterise(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = μ + σ·ε with ε ~ N(0, I) (torch's global generator: the trainer seeds and resumes it)."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)
