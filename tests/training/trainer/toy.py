"""A toy task for the trainer's tests: regress a fixed linear map through an encoder + a loss
with learnable scalars (like GCL's w, b), from a dataset whose batch is a pure function of
(seed, rank, step). Dropout makes the result depend on torch's RNG, so resume must restore it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

DIM_IN, DIM_OUT = 8, 4
_TRUE_MAP = np.random.default_rng(1234).standard_normal((DIM_IN, DIM_OUT)).astype(np.float32)


class ToyBatches(Dataset):
    """Batch ``step`` of rank ``rank``: ``x`` [batch, 8], ``x2`` (a noisy view), ``y`` [batch, 4]."""

    def __init__(self, seed: int = 0, rank: int = 0, batch: int = 16) -> None:
        self.seed, self.rank, self.batch = seed, rank, batch

    def __getitem__(self, step: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.rank, step])
        x = rng.standard_normal((self.batch, DIM_IN)).astype(np.float32)
        x2 = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
        return {"x": x, "x2": x2, "y": 2.0 * x @ _TRUE_MAP + 0.5, "ids": list(range(self.batch))}


class ToyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.1)
        self.linear = nn.Linear(DIM_IN, DIM_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.drop(x))


@dataclass
class ToyOutput:
    loss: torch.Tensor
    metrics: Mapping[str, Any] = field(default_factory=dict)


class ToyLoss(nn.Module):
    """MSE of ``w * e + b`` against the target; ``w``, ``b`` learnable scalars."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.tensor(0.0))

    def forward(self, e1: torch.Tensor, e2: torch.Tensor, y: torch.Tensor) -> ToyOutput:
        loss = 0.5 * (((self.w * e1 + self.b - y) ** 2).mean() + ((self.w * e2 + self.b - y) ** 2).mean())
        return ToyOutput(loss, {"w": self.w.detach(), "bias": self.b.detach()})


def toy_modules() -> dict[str, nn.Module]:
    return {"encoder": ToyEncoder(), "loss": ToyLoss()}


def toy_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]) -> ToyOutput:
    # The encoder runs twice per step (two views): DDP must cope with that.
    e1 = modules["encoder"](batch["x"])
    e2 = modules["encoder"](batch["x2"])
    return modules["loss"](e1.float(), e2.float(), batch["y"])


def items(batch: dict[str, Any]) -> int:
    return len(batch["ids"])
