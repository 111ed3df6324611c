"""The attacked quantity: cosine score, margin loss, gradient-evaluation budget and success record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Encoder = Callable[[torch.Tensor], torch.Tensor]  # waveform [T] float32 → embedding [D]


class BudgetExhausted(Exception):
    """Raised by the oracle when a gradient is asked for past the budget."""


class Succeeded(Exception):
    """Raised by the oracle at the first success when the attack stops there."""


@dataclass(frozen=True)
class Trial:
    """One attack: the probe waveform x and the embedding it must be pushed towards (or away from)."""

    waveform: torch.Tensor  # [T] in [-1, 1]
    target: torch.Tensor  # [D] enrolled embedding


@dataclass
class AttackResult:
    delta: torch.Tensor  # the returned perturbation (inside the box)
    score: float  # s(x + delta)
    success: bool
    evaluations: int  # gradient evaluations spent
    first_success: int | None  # gradient evaluations at the first success (None: never)

    def snr_db(self, waveform: torch.Tensor) -> float:
        """10·log10(‖x‖² / ‖δ‖²); +inf for δ = 0."""
        noise = float(self.delta.pow(2).sum())
        return float("inf") if noise == 0.0 else 10.0 * float(torch.log10(waveform.pow(2).sum() / noise))


class Oracle:
    """Scores x + δ against the target; counts every gradient evaluation and stops at the budget.

    ``evade=False`` (impersonation): success is ``s ≥ τ``, loss ``max(0, τ + κ − s)``.
    ``evade=True`` (untargeted evasion of a genuine probe): success is ``s < τ``, loss
    ``max(0, s − τ + κ)``. The first successful δ is kept, so an attack that wanders off
    afterwards still reports it.
    """

    def __init__(
        self, encoder: Encoder, trial: Trial, tau: float, kappa: float, budget: int, evade: bool = False
    ) -> None:
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget}")
        self.encoder, self.x, self.tau, self.kappa, self.budget, self.evade = (
            encoder,
            trial.waveform.detach().float(),
            tau,
            kappa,
            budget,
            evade,
        )
        self.target = F.normalize(trial.target.detach().float(), dim=-1)
        self.evaluations = 0
        self.first_success: int | None = None
        self.success_delta: torch.Tensor | None = None
        self.success_score = 0.0
        self.weight = 1.0  # c of objective B
        self.keep_first = True  # False (objective B): keep the smallest successful δ instead

    def score(self, delta: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(self.encoder(self.x + delta), self.target, dim=-1)

    def successful(self, score: float) -> bool:
        return score < self.tau if self.evade else score >= self.tau

    def margin(self, score: torch.Tensor) -> torch.Tensor:
        gap = score - self.tau + self.kappa if self.evade else self.tau + self.kappa - score
        return torch.clamp(gap, min=0.0)

    def loss_and_grad(self, delta: torch.Tensor, extra: Callable[[torch.Tensor], torch.Tensor] | None = None):
        """(loss, ∂loss/∂δ, score) at δ: one gradient evaluation. ``extra(δ)`` adds a differentiable term."""
        if self.evaluations >= self.budget:
            raise BudgetExhausted
        self.evaluations += 1
        d = delta.detach().clone().requires_grad_(True)
        s = self.score(d)
        loss = self.weight * self.margin(s) + (extra(d) if extra is not None else 0.0)
        (grad,) = torch.autograd.grad(loss, d)
        self.record(d.detach(), float(s.detach()))
        return float(loss.detach()), grad, float(s.detach())

    def record(self, delta: torch.Tensor, score: float) -> None:
        if not self.successful(score):
            return
        if self.first_success is None:
            self.first_success = self.evaluations
        elif self.keep_first or (self.success_delta is not None and delta.norm() >= self.success_delta.norm()):
            return
        self.success_delta, self.success_score = delta.clone(), score

    def box(self, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample bounds of δ: |δ| ≤ ε and x + δ ∈ [−1, 1]."""
        return torch.clamp(-1.0 - self.x, min=-eps), torch.clamp(1.0 - self.x, max=eps)

    def result(self, delta: torch.Tensor) -> AttackResult:
        """The attack's answer: its first success if it had one, else the final δ (scored without a gradient)."""
        if self.success_delta is not None:
            return AttackResult(self.success_delta, self.success_score, True, self.evaluations, self.first_success)
        with torch.no_grad():
            s = float(self.score(delta))
        ok = self.successful(s)
        return AttackResult(delta.detach(), s, ok, self.evaluations, self.evaluations if ok else None)
