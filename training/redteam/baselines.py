"""First-order baselines at the same gradient-evaluation budget: FGSM, PGD, Adam (METHODS §3)."""

from __future__ import annotations

import torch

from training.redteam.oracle import AttackResult, BudgetExhausted, Oracle


def fgsm(oracle: Oracle, eps: float) -> AttackResult:
    """One signed step of size ε from δ = 0 (one gradient evaluation, whatever the budget)."""
    lo, hi = oracle.box(eps)
    _, grad, _ = oracle.loss_and_grad(torch.zeros_like(oracle.x))
    return oracle.result(torch.clamp(-eps * grad.sign(), lo, hi))


def pgd(oracle: Oracle, eps: float, step: float | None = None) -> AttackResult:
    """Signed-gradient descent projected on the box; step 2.5ε/T (T = budget) unless given."""
    lo, hi = oracle.box(eps)
    alpha = 2.5 * eps / oracle.budget if step is None else step
    delta = torch.zeros_like(oracle.x)
    try:
        while oracle.first_success is None:
            _, grad, _ = oracle.loss_and_grad(delta)
            delta = torch.clamp(delta - alpha * grad.sign(), lo, hi)
    except BudgetExhausted:
        pass
    return oracle.result(delta)


def adam(oracle: Oracle, eps: float, lr: float) -> AttackResult:
    """Adam on δ, projected on the box after each step; ``lr`` in waveform units (pick it on dev trials)."""
    lo, hi = oracle.box(eps)
    delta = torch.zeros_like(oracle.x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    try:
        while oracle.first_success is None:
            _, grad, _ = oracle.loss_and_grad(delta.detach())
            delta.grad = grad
            opt.step()
            with torch.no_grad():
                delta.copy_(torch.clamp(delta, lo, hi))
    except BudgetExhausted:
        pass
    return oracle.result(delta.detach())
