"""The red team's defaults and ranges (METHODS §3), torch-free so the CLI's parser can show them."""

from __future__ import annotations

import math
from collections.abc import Sequence

EPSILONS = (0.0005, 0.001, 0.002, 0.005)  # L∞ bounds, waveform full scale 1
BUDGETS = (10, 20, 50, 100)  # gradient evaluations
ATTACKS = ("lbfgsb", "tanh_lbfgs", "objective_b", "fgsm", "pgd", "adam")
EPS_RANGE, BUDGET_RANGE = (1e-5, 0.1), (1, 1000)
QUERY_BUDGETS = (100, 200, 500)  # black-box: Verify queries per trial
QUERY_RANGE = (1, 100_000)
# The gateway's default operating point (serving.scoring.DEFAULT_TARGET_FAR; export may not import
# serving): τ is the card's cosine threshold at this false-accept rate.
DEFAULT_FAR = 0.01
KAPPA = 0.05


def check_ranges(epsilons: Sequence[float], budgets: Sequence[int]) -> None:
    """ε in [1e-5, 0.1] and budgets in [1, 1000], at least one of each; ValueError otherwise."""
    if not epsilons or not budgets:
        raise ValueError("at least one ε and one budget are needed")
    for eps in epsilons:
        if not (math.isfinite(eps) and EPS_RANGE[0] <= eps <= EPS_RANGE[1]):
            raise ValueError(f"ε {eps:g} is out of range [{EPS_RANGE[0]:g}, {EPS_RANGE[1]:g}]")
    for budget in budgets:
        if not BUDGET_RANGE[0] <= budget <= BUDGET_RANGE[1]:
            raise ValueError(f"budget {budget} is out of range [{BUDGET_RANGE[0]}, {BUDGET_RANGE[1]}]")


def check_queries(budgets: Sequence[int]) -> None:
    if not budgets or not all(QUERY_RANGE[0] <= b <= QUERY_RANGE[1] for b in budgets):
        raise ValueError(f"query budgets must be in [{QUERY_RANGE[0]}, {QUERY_RANGE[1]}] (got {list(budgets)})")


def check_attacks(attacks: Sequence[str]) -> None:
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown or not attacks:
        raise ValueError(f"unknown attack(s) {', '.join(unknown) or '(none)'} (known: {', '.join(ATTACKS)})")
