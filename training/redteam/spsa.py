"""Black-box impersonation from scores alone (issue 14 item 3): SPSA gradients, L-BFGS update.

Pure numpy, no torch: the attacked verifier is any ``waveform → (score, accepted)`` callable (a
running gateway's Verify RPC, in ``toitsu.redteam_gateway``). Every call is one query; the
:class:`QueryOracle` counts them, stops at the budget, keeps the first accepted waveform and
projects every candidate on the box (``|δ| ≤ ε`` and ``x + δ ∈ [−1, 1]``, checked after the cast to
float32, the format sent) before it is submitted.

Success is the verifier's own decision; the loss is ``−s`` (METHODS §3's margin ``τ + κ − s``
differs by a constant, which neither SPSA's differences nor the line search's comparisons see).
Its gradient is estimated by SPSA: for ``k`` Rademacher
directions u, ``(L(δ + cu) − L(δ − cu)) / 2c · u``, averaged (2k queries). The two-loop L-BFGS
recursion turns it into a step, and a backtracking line search on the queried loss picks its
length (one query per try). Curvature pairs with ``sᵀy ≤ 0`` (SPSA noise) are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Scorer = Callable[[np.ndarray], tuple[float, bool]]  # float32 waveform [T] → (score, accepted)


class QueryBudgetExhausted(Exception):
    """Raised when a query is asked for past the budget."""


class Accepted(Exception):
    """Raised at the first accepted query: the attack stops there."""


@dataclass
class QueryRecord:
    """What one attack on one probe did: queries, first success, and the box as submitted."""

    queries: int = 0
    first_success: int | None = None  # queries spent at the first accepted waveform
    best_score: float = -np.inf
    initial_score: float | None = None
    max_abs_delta: float = 0.0  # over every submitted waveform
    max_abs_sample: float = 0.0
    success_delta: np.ndarray | None = field(default=None, repr=False)
    scores: list[float] = field(default_factory=list, repr=False)


def project(x: np.ndarray, delta: np.ndarray, eps: float) -> np.ndarray:
    """The float32 waveform nearest ``x + δ`` with ``|w − x| ≤ ε`` and ``w ∈ [−1, 1]``, exactly (after the cast)."""
    x64 = x.astype(np.float64)
    w64 = np.clip(x64 + np.clip(delta, -eps, eps), -1.0, 1.0)
    w = w64.astype(np.float32)
    # Rounding to float32 can land one ulp outside the ε box; step those samples back towards x.
    over = np.abs(w.astype(np.float64) - x64) > eps
    while np.any(over):
        w[over] = np.nextafter(w[over], x[over])
        over = np.abs(w.astype(np.float64) - x64) > eps
    return np.clip(w, np.float32(-1.0), np.float32(1.0))


class QueryOracle:
    """Counts queries of ``scorer`` on ``x + δ`` up to ``budget``; the loss is ``−s``."""

    def __init__(self, scorer: Scorer, x: np.ndarray, eps: float, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"query budget must be >= 1, got {budget}")
        self.scorer, self.x, self.eps, self.budget = scorer, np.asarray(x, dtype=np.float32), eps, budget
        self.record = QueryRecord()

    def loss(self, delta: np.ndarray) -> float:
        """One query at the projected ``δ``; raises :class:`Accepted` when the verifier accepts it"""
        if self.record.queries >= self.budget:
            raise QueryBudgetExhausted
        w = project(self.x, delta, self.eps)
        sent = w.astype(np.float64) - self.x
        rec = self.record
        rec.max_abs_delta = max(rec.max_abs_delta, float(np.max(np.abs(sent))))
        rec.max_abs_sample = max(rec.max_abs_sample, float(np.max(np.abs(w))))
        rec.queries += 1
        score, accepted = self.scorer(w)
        rec.scores.append(score)
        rec.best_score = max(rec.best_score, score)
        if rec.initial_score is None:
            rec.initial_score = score
        if accepted:
            rec.first_success, rec.success_delta = rec.queries, sent
            raise Accepted
        return -score


def lift(v: np.ndarray, size: int, block: int) -> np.ndarray:
    """δ [size] from its coarse parameters v (one per ``block`` samples), linearly interpolated:
    a smooth δ whose samples lie between neighbouring v's, so ``|v| ≤ ε`` keeps ``|δ| ≤ ε``."""
    if block == 1:
        return v
    return np.interp(np.arange(size) / block, np.arange(v.size), v)


def coarse_size(size: int, block: int) -> int:
    return size if block == 1 else (size - 1) // block + 2


def spsa_gradient(
    loss: Callable[[np.ndarray], float], v: np.ndarray, c: float, k: int, rng: np.random.Generator
) -> np.ndarray:
    """The mean of ``k`` two-sided SPSA estimates of ∇loss at v (2k queries)."""
    grad = np.zeros_like(v)
    for _ in range(k):
        u = rng.choice(np.array([-1.0, 1.0]), size=v.shape)
        grad += (loss(v + c * u) - loss(v - c * u)) / (2.0 * c) * u
    return grad / k


def two_loop(grad: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """−H·∇ by the L-BFGS two-loop recursion over ``pairs`` (s, y), oldest first; −∇ with none."""
    q = grad.copy()
    alphas = []
    for s, y in reversed(pairs):
        rho = 1.0 / float(y @ s)
        a = rho * float(s @ q)
        q -= a * y
        alphas.append((rho, a, s, y))
    if pairs:
        s, y = pairs[-1]
        q *= float(s @ y) / float(y @ y)
    for rho, a, s, y in reversed(alphas):
        q += (a - rho * float(y @ q)) * s
    return -q


@dataclass(frozen=True)
class SpsaSettings:
    directions: int = 2  # k: Rademacher directions averaged per gradient estimate
    c: float | None = None  # SPSA half-width; default ε/25 (wider differences measured the jump off δ = 0)
    # δ is searched at one value per ``block`` samples, linearly interpolated: white noise at the
    # full rate lowers a speaker score whatever its sign (δ = 0 is then a local maximum along
    # every ±cu), where smooth directions carry a usable first-order signal.
    block: int = 128
    memory: int = 10
    backtracks: int = 3  # line-search halvings
    seed: int = 0


def spsa_lbfgs(oracle: QueryOracle, settings: SpsaSettings = SpsaSettings()) -> QueryRecord:
    """Minimise ``−s`` over the box from δ = 0 until accepted or out of queries.

    The first step (and any step after a reset) is scaled to ``‖p‖∞ = min(ε, 4c)``; a step that the line
    search cannot make decrease the loss resets the memory.
    """
    eps, size, block = oracle.eps, oracle.x.size, settings.block
    c = settings.c if settings.c is not None else eps / 25
    rng = np.random.default_rng(settings.seed)

    def loss(v: np.ndarray) -> float:
        return oracle.loss(lift(np.clip(v, -eps, eps), size, block))

    delta = np.zeros(coarse_size(size, block), dtype=np.float64)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        loss(delta)  # the probe as it is: its score, and a success if it is accepted already
        delta = c * rng.choice(np.array([-1.0, 1.0]), size=delta.shape)
        current = loss(delta)
        grad = spsa_gradient(loss, delta, c, settings.directions, rng)
        while True:
            p = two_loop(grad, pairs)
            if not pairs:
                p *= min(eps, 4 * c) / max(float(np.max(np.abs(p))), 1e-12)  # a full-ε first step is noise
            t, moved = 1.0, False
            for _ in range(settings.backtracks + 1):
                trial = np.clip(delta + t * p, -eps, eps)
                value = loss(trial)
                if value < current:
                    moved = True
                    break
                t /= 2
            if not moved:
                pairs.clear()
                grad = spsa_gradient(loss, delta, c, settings.directions, rng)
                continue
            new_grad = spsa_gradient(loss, trial, c, settings.directions, rng)
            s, y = trial - delta, new_grad - grad
            if float(s @ y) > 1e-12 * float(s @ s):
                pairs = [*pairs, (s, y)][-settings.memory :]
            delta, current, grad = trial, value, new_grad
    except (Accepted, QueryBudgetExhausted):
        pass
    return oracle.record
