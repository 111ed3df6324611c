"""The black-box optimiser (training/redteam/spsa.py) on analytic scores: the box after the float32
cast, query counting, the two-loop recursion's secant property, SPSA's mean, and success exactly
where the analytic maximum in the box passes τ."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from training.redteam.spsa import (
    QueryOracle,
    SpsaSettings,
    coarse_size,
    lift,
    project,
    spsa_gradient,
    spsa_lbfgs,
    two_loop,
)


class Linear:
    """s(w) = a·(w − x): the score and an independent count of the calls, every waveform kept."""

    def __init__(self, a: np.ndarray, x: np.ndarray, tau: float) -> None:
        self.a, self.x, self.tau, self.calls, self.seen = a, x.astype(np.float64), tau, 0, []

    def __call__(self, w: np.ndarray) -> tuple[float, bool]:
        self.calls += 1
        self.seen.append(w.copy())
        s = float(self.a @ (w.astype(np.float64) - self.x))
        return s, s >= self.tau


def best_in_box(a: np.ndarray, x: np.ndarray, eps: float) -> float:
    """max of a·δ over |δ| ≤ ε, x + δ ∈ [−1, 1]: each coordinate at its bound in a's sign."""
    hi, lo = np.minimum(eps, 1.0 - x), np.maximum(-eps, -1.0 - x)
    return float(np.sum(np.where(a > 0, a * hi, a * lo)))


def test_projection_holds_the_box_after_the_float32_cast():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 5000).astype(np.float32)
    x[:100] = np.float32(0.99999)  # near the rails, where clipping and rounding meet
    for eps in (1e-5, 3.3e-4, 0.1):
        w = project(x, rng.normal(0, 1, x.size), eps)
        assert w.dtype == np.float32
        assert np.all(np.abs(w.astype(np.float64) - x) <= eps) and np.all(np.abs(w) <= 1.0)


def test_lift_interpolates_within_the_coarse_values():
    v = np.array([0.0, 1.0, -1.0, 0.5])
    d = lift(v, 7, 2)  # samples 0..6 at coarse positions 0, 0.5, ..., 3
    np.testing.assert_allclose(d, [0.0, 0.5, 1.0, 0.0, -1.0, -0.25, 0.5])
    assert coarse_size(7, 2) == 5 and coarse_size(8, 2) == 5 and coarse_size(9, 2) == 6
    assert lift(v, 4, 1) is v


def test_two_loop_satisfies_the_secant_equation():
    # BFGS's H maps the newest y to the newest s: -two_loop(y) == s, whatever the older pairs.
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    hessian = a @ a.T + 6 * np.eye(6)
    pairs = [(s, hessian @ s) for s in rng.normal(size=(3, 6))]
    np.testing.assert_allclose(-two_loop(pairs[-1][1], pairs), pairs[-1][0], rtol=1e-9)
    np.testing.assert_allclose(two_loop(np.arange(6.0), []), -np.arange(6.0))


def test_spsa_mean_is_the_gradient_of_a_linear_loss():
    rng = np.random.default_rng(2)
    a, x = rng.normal(size=20), np.zeros(20, dtype=np.float32)
    oracle = QueryOracle(Linear(a, x, tau=1e9), x, eps=0.1, budget=10_000)
    g = spsa_gradient(oracle.loss, np.zeros(20), c=0.05, k=2000, rng=rng)
    # loss = −a·δ, so ∇ = −a; each estimate is −(a·u)u, whose mean over Rademacher u is −a.
    assert float(g @ -a) / (np.linalg.norm(g) * np.linalg.norm(a)) > 0.95
    assert oracle.record.queries == 4000


@pytest.mark.parametrize("margin, succeeds", [(0.5, True), (1.02, False)])
def test_success_exactly_where_the_box_allows_it(margin, succeeds):
    rng = np.random.default_rng(3)
    d, eps, budget = 16, 0.01, 400
    a, x = rng.normal(size=d), rng.uniform(-1, 1, d).astype(np.float32)
    x[:3] = 0.995  # some samples whose room to +1 is below ε
    tau = margin * best_in_box(a, x.astype(np.float64), eps)
    scorer = Linear(a, x, tau)
    record = spsa_lbfgs(QueryOracle(scorer, x, eps, budget), SpsaSettings(directions=2, c=eps / 2, block=1, seed=0))
    assert record.queries == scorer.calls == len(record.scores)
    assert (record.first_success is not None) is succeeds
    if succeeds:
        assert record.first_success == record.queries < budget
    else:
        assert record.queries == budget
    sent = np.stack(scorer.seen).astype(np.float64)
    assert np.all(np.abs(sent - x) <= eps) and np.all(np.abs(sent) <= 1.0)
    assert record.max_abs_delta == pytest.approx(float(np.max(np.abs(sent - x))))


def test_budget_below_one_is_refused():
    with pytest.raises(ValueError):
        QueryOracle(lambda w: (0.0, False), np.zeros(4, np.float32), 0.01, 0)


def test_the_optimiser_does_not_import_torch():
    code = "import sys, training.redteam.spsa; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
