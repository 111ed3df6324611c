"""A tiny random-weight speaker encoder on the project's log-mel front end, and fixed trial pairs."""

from __future__ import annotations

import torch
from torch import nn

from training.frontends.logmel import LogMelFrontend
from training.redteam.oracle import Trial


class TinyEncoder(nn.Module):
    """waveform [T] → embedding [16]: log-mel (20 bands) → 2 conv1d layers → mean over time."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.front = LogMelFrontend(n_mels=20)
        self.net = nn.Sequential(nn.Conv1d(20, 32, 3, padding=1), nn.Tanh(), nn.Conv1d(32, 16, 3, padding=1))
        # Random weights map every input near one direction; subtracting the mean embedding of a
        # reference cohort (disjoint seeds from the trials') spreads impostor scores around 0.
        self.register_buffer("centre", torch.zeros(16))
        with torch.no_grad():
            self.centre = torch.stack([self(v) for v in voices(16, seed=-1 % 2**31)]).mean(0)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        feats, _ = self.front(waveform[None], torch.tensor([waveform.numel()]))
        return self.net(feats).mean(-1)[0] - self.centre


def voices(n: int, seed: int, samples: int = 4000) -> list[torch.Tensor]:
    """n distinct synthetic 'voices': a few harmonics of a random pitch plus noise, peak 0.5."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    out = []
    for _ in range(n):
        f0 = 80 + 220 * torch.rand(1, generator=g)
        amps = torch.rand(6, generator=g)
        x = sum(a * torch.sin(2 * torch.pi * f0 * (k + 1) * t) for k, a in enumerate(amps))
        x = x + 0.3 * torch.randn(samples, generator=g)
        out.append(0.5 * x / x.abs().max())
    return out


def impostor_trials(encoder: TinyEncoder, n: int, seed: int) -> list[Trial]:
    """n impostor pairs: probe voice i against the enrolled embedding of a different voice."""
    probes, targets = voices(n, seed), voices(n, seed + 1000)
    with torch.no_grad():
        return [Trial(p, encoder(t)) for p, t in zip(probes, targets)]
