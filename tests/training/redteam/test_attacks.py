"""Properties of the attacks on a tiny random-weight encoder (METHODS §3), seeds fixed, CPU seconds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.training.redteam.tiny import TinyEncoder, impostor_trials, voices
from training.redteam import baselines, quasi_newton
from training.redteam.oracle import Oracle, Trial

TAU, KAPPA = 0.5, 0.05


@pytest.fixture(scope="module")
def encoder() -> TinyEncoder:
    return TinyEncoder(seed=0).eval()


@pytest.fixture(scope="module")
def trials(encoder: TinyEncoder) -> list[Trial]:
    return impostor_trials(encoder, 8, seed=0)


ATTACKS = {
    "lbfgsb": lambda o, eps: quasi_newton.lbfgsb(o, eps),
    "tanh_lbfgs": lambda o, eps: quasi_newton.tanh_lbfgs(o, eps),
    "fgsm": lambda o, eps: baselines.fgsm(o, eps),
    "pgd": lambda o, eps: baselines.pgd(o, eps),
    "adam": lambda o, eps: baselines.adam(o, eps, lr=eps / 10),
}


def true_score(encoder: TinyEncoder, trial: Trial, delta: torch.Tensor) -> float:
    with torch.no_grad():
        return float(F.cosine_similarity(encoder(trial.waveform + delta), trial.target, dim=-1))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_perturbation_stays_in_the_eps_box_and_in_unit_range(encoder: TinyEncoder, trials: list[Trial], name: str):
    eps = 0.005
    # A probe that touches ±1 makes the [-1, 1] constraint bind on top of the ε box.
    loud = trials[0].waveform / trials[0].waveform.abs().max()
    trial = Trial(loud, trials[0].target)
    result = ATTACKS[name](Oracle(encoder, trial, TAU, KAPPA, budget=20), eps)
    assert result.delta.abs().max() <= eps * (1 + 1e-6)
    assert (loud + result.delta).abs().max() <= 1.0 + 1e-6
    assert result.score == pytest.approx(true_score(encoder, trial, result.delta), abs=1e-5)
    assert result.success == (result.score >= TAU)


def test_objective_b_stays_in_the_box_and_succeeds(encoder: TinyEncoder, trials: list[Trial]):
    eps = 0.005
    oracles = [Oracle(encoder, trials[0], TAU, KAPPA, budget=15) for _ in range(3)]
    result = quasi_newton.objective_b(oracles, eps)
    assert result.delta.abs().max() <= eps * (1 + 1e-6)
    assert result.success and true_score(encoder, trials[0], result.delta) >= TAU


def success_rate(encoder, trials, attack, eps: float, budget: int) -> int:
    return sum(attack(Oracle(encoder, t, TAU, KAPPA, budget), eps).success for t in trials)


@pytest.mark.parametrize("name", ["lbfgsb", "pgd"])
def test_success_is_monotone_in_eps(encoder: TinyEncoder, trials: list[Trial], name: str):
    rates = [success_rate(encoder, trials, ATTACKS[name], eps, 20) for eps in (0.0005, 0.001, 0.002, 0.005)]
    assert rates == sorted(rates)
    assert rates[0] < rates[-1]  # the range of ε spans failure to success on these trials


@pytest.mark.parametrize("name", ["lbfgsb", "adam"])
def test_success_is_monotone_in_budget(encoder: TinyEncoder, trials: list[Trial], name: str):
    rates = [success_rate(encoder, trials, ATTACKS[name], 0.003, budget) for budget in (1, 2, 5, 10, 20)]
    assert rates == sorted(rates)
    assert rates[0] < rates[-1]


def test_quasi_newton_needs_fewer_evaluations_than_pgd(encoder: TinyEncoder, trials: list[Trial]):
    eps, budget = 0.005, 20
    qn = [quasi_newton.lbfgsb(Oracle(encoder, t, TAU, KAPPA, budget), eps) for t in trials]
    pg = [baselines.pgd(Oracle(encoder, t, TAU, KAPPA, budget), eps) for t in trials]
    assert sum(r.success for r in qn) >= sum(r.success for r in pg) > 0
    both = [(a.first_success, b.first_success) for a, b in zip(qn, pg) if a.success and b.success]
    assert sum(a for a, _ in both) < sum(b for _, b in both)


class CountingEncoder(torch.nn.Module):
    """Counts the forward passes that build a graph (one per gradient evaluation)."""

    def __init__(self, inner: TinyEncoder) -> None:
        super().__init__()
        self.inner, self.graphs = inner, 0

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        self.graphs += int(waveform.requires_grad)
        return self.inner(waveform)


@pytest.mark.parametrize("name", ["lbfgsb", "tanh_lbfgs", "pgd", "adam"])
def test_gradient_evaluations_are_counted_and_stop_at_the_budget(encoder, trials, name: str):
    counting = CountingEncoder(encoder)
    oracle = Oracle(counting, trials[0], tau=0.99, kappa=KAPPA, budget=7)  # unreachable: runs to the budget
    result = ATTACKS[name](oracle, 0.0005)
    assert not result.success
    assert result.evaluations == oracle.evaluations == counting.graphs == 7


def test_evasion_pushes_a_genuine_probe_below_tau(encoder: TinyEncoder):
    probe = voices(1, seed=7)[0]
    other_take = probe + 0.05 * torch.randn(probe.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # genuine: the same voice enrolled from another take (s = 1 exactly is a stationary point)
        trial = Trial(probe, encoder(other_take))
    assert true_score(encoder, trial, torch.zeros_like(probe)) >= TAU
    result = quasi_newton.lbfgsb(Oracle(encoder, trial, TAU, KAPPA, budget=50, evade=True), 0.005)
    assert result.success and true_score(encoder, trial, result.delta) < TAU
    assert result.delta.abs().max() <= 0.005 * (1 + 1e-6)
