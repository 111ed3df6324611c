"""Quasi-Newton impersonation/evasion: L-BFGS-B in the box, tanh-L-BFGS, and objective B (METHODS §3)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from training.redteam.oracle import AttackResult, BudgetExhausted, Oracle, Succeeded


def lbfgsb(oracle: Oracle, eps: float, stop_on_success: bool = True) -> AttackResult:
    """Objective A by scipy's L-BFGS-B: the ε box and [−1, 1] are its native bounds, so δ never leaves them."""
    lo, hi = oracle.box(eps)
    best = torch.zeros_like(oracle.x)

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal best
        delta = torch.from_numpy(v).float()
        loss, grad, _ = oracle.loss_and_grad(delta)
        best = delta
        if stop_on_success and oracle.first_success is not None:
            raise Succeeded
        return loss, grad.double().numpy()

    bounds = np.stack([lo.double().numpy(), hi.double().numpy()], axis=1)
    try:
        out = minimize(
            fun,
            np.zeros(oracle.x.numel()),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxcor": 10, "maxfun": oracle.budget + 1, "maxiter": oracle.budget + 1},
        )
        best = torch.from_numpy(out.x).float()
    except (BudgetExhausted, Succeeded):
        pass
    return oracle.result(torch.clamp(best, lo, hi))


def _tanh_map(oracle: Oracle, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = oracle.box(eps)
    return (lo + hi) / 2, (hi - lo) / 2  # δ = centre + radius·tanh(v) spans exactly the box


def tanh_lbfgs(oracle: Oracle, eps: float, extra=None, stop_on_success: bool = True) -> AttackResult:
    """δ = centre + radius·tanh(v) (= ε·tanh(v) away from ±1) with torch L-BFGS, memory 10, strong Wolfe."""
    centre, radius = _tanh_map(oracle, eps)
    # v = 0 gives δ = centre, which is 0 except where x sits within ε of ±1; start from δ = 0 there too.
    v = torch.atanh(torch.clamp(-centre / radius, -0.999, 0.999)).requires_grad_(True)
    opt = torch.optim.LBFGS(
        [v],
        lr=1.0,
        max_iter=oracle.budget,
        max_eval=oracle.budget * 2,
        history_size=10,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        delta = centre + radius * torch.tanh(v)
        loss, g_delta, _ = oracle.loss_and_grad(delta, extra)
        if stop_on_success and oracle.first_success is not None:
            raise Succeeded
        with torch.no_grad():  # chain rule through the map by hand: the oracle differentiates w.r.t. δ
            v.grad = g_delta * radius * (1 - torch.tanh(v) ** 2)
        return torch.tensor(loss)

    try:
        while oracle.evaluations < oracle.budget:
            before = oracle.evaluations
            opt.step(closure)
            if oracle.evaluations == before or float(opt.state[opt._params[0]].get("prev_loss", 1.0)) == 0.0:
                break  # converged (loss 0 or no progress): more steps would spend nothing
    except (BudgetExhausted, Succeeded):
        pass
    with torch.no_grad():
        return oracle.result(centre + radius * torch.tanh(v))


def objective_b(oracles: list[Oracle], eps: float, c_low: float = 1e-3, c_high: float = 1e3) -> AttackResult:
    """Objective B: minimise c·margin + ‖δ‖² (tanh-L-BFGS), bisecting c in log space over the given oracles.

    One oracle per bisection step (each with its share of the budget); a success lowers c (smaller δ),
    a failure raises it. Returns the successful result with the smallest ‖δ‖, else the last one.
    """
    best: AttackResult | None = None
    last: AttackResult | None = None
    for oracle in oracles:
        c = float(np.sqrt(c_low * c_high))
        oracle.weight, oracle.keep_first = c, False
        last = tanh_lbfgs(oracle, eps, extra=lambda d: d.pow(2).sum(), stop_on_success=False)
        if last.success:
            c_high = c
            if best is None or last.delta.norm() < best.delta.norm():
                best = last
        else:
            c_low = c
    assert last is not None, "objective_b needs at least one oracle"
    return best if best is not None else last
