"""Baseline step sizes chosen on dev trials only, never on the trials the attacks are scored on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from training.redteam.baselines import adam, pgd
from training.redteam.oracle import Encoder, Oracle, Trial


@dataclass(frozen=True)
class Split:
    """Disjoint dev and test trials: step sizes come from ``dev``, success rates from ``test``."""

    dev: tuple[Trial, ...]
    test: tuple[Trial, ...]


def split_trials(trials: Sequence[Trial], dev_fraction: float, seed: int) -> Split:
    """A seeded random partition of the trials into dev (at least one) and test."""
    order = torch.randperm(len(trials), generator=torch.Generator().manual_seed(seed)).tolist()
    n_dev = max(1, round(dev_fraction * len(trials)))
    return Split(tuple(trials[i] for i in order[:n_dev]), tuple(trials[i] for i in order[n_dev:]))


@dataclass(frozen=True)
class StepSizes:
    pgd: float  # absolute step in waveform units
    adam_lr: float


def pick_steps(
    encoder: Encoder,
    dev: Sequence[Trial],
    tau: float,
    kappa: float,
    eps: float,
    budget: int,
    multipliers: Sequence[float] = (0.5, 1.0, 2.5, 5.0, 10.0),
    evade: bool = False,
) -> StepSizes:
    """The step (a multiple of ε/T for PGD, of ε for Adam) with the best dev success, ties to fewer evaluations.

    Takes the dev trials alone: the test trials cannot reach it.
    """

    def rank(run) -> tuple[float, float]:
        results = [run(Oracle(encoder, t, tau, kappa, budget, evade)) for t in dev]
        wins = [r for r in results if r.success]
        mean_evals = sum(r.first_success or budget for r in wins) / len(wins) if wins else float(budget)
        return (-len(wins), mean_evals)

    pgd_m = min(multipliers, key=lambda m: rank(lambda o: pgd(o, eps, m * eps / budget)))
    return StepSizes(
        pgd=pgd_m * eps / budget, adam_lr=pick_adam_lr(encoder, dev, tau, kappa, eps, budget, multipliers, evade)
    )


def pick_adam_lr(
    encoder: Encoder,
    dev: Sequence[Trial],
    tau: float,
    kappa: float,
    eps: float,
    budget: int,
    multipliers: Sequence[float] = (0.5, 1.0, 2.5, 5.0, 10.0),
    evade: bool = False,
) -> float:
    """Adam's learning rate alone (a multiple of ε/10), by the same dev-only ranking as ``pick_steps``
    (PGD keeps METHODS §3's fixed 2.5ε/T where that is what is reported)."""

    def rank(m: float) -> tuple[float, float]:
        results = [adam(Oracle(encoder, t, tau, kappa, budget, evade), eps, m * eps / 10) for t in dev]
        wins = [r for r in results if r.success]
        mean_evals = sum(r.first_success or budget for r in wins) / len(wins) if wins else float(budget)
        return (-len(wins), mean_evals)

    return min(multipliers, key=rank) * eps / 10
