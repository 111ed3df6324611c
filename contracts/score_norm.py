"""Adaptive score normalisation, AS-norm with a top-N cohort (Cumani et al. 2011; Matějka et al.
2017, "Analysis of score normalization in multilingual speaker recognition"):

    s' = ½ [(s − μ_e) / σ_e + (s − μ_t) / σ_t]

where μ_e, σ_e are the mean and standard deviation of the ``top_n`` highest cosines between the
enrollment template and the cohort, and μ_t, σ_t the same for the test embedding. It lives in
contracts because export (calibration) and serving (Verify, Identify) must run the same math; numpy only:
the gateway never imports torch. All vectors are unit-norm, so every score is a cosine.
"""

from __future__ import annotations

import numpy as np

# A cohort whose top scores are all equal (σ = 0) would divide by zero; σ is floored here.
MIN_SIGMA = 1e-6


def top_n_stats(vectors: np.ndarray, cohort: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """(μ [M], σ [M]) of the ``top_n`` highest cosines of each of ``vectors`` [M, D] against
    ``cohort`` [C, D] (unit rows; ``top_n`` is capped at C). σ is the population deviation."""
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    scores = np.atleast_2d(vectors).astype(np.float32) @ cohort.T  # [M, C]
    n = min(top_n, scores.shape[1])
    top = np.partition(scores, scores.shape[1] - n, axis=1)[:, -n:]
    return top.mean(axis=1), np.maximum(top.std(axis=1), MIN_SIGMA)


def as_norm(raw: np.ndarray, enroll: np.ndarray, test: np.ndarray, cohort: np.ndarray, top_n: int) -> np.ndarray:
    """AS-norm scores [M] of raw cosines ``raw`` [M] between templates ``enroll`` [M, D] and tests
    ``test`` [M, D] (or one test [D] against every template: Identify's candidates)."""
    mu_e, sd_e = top_n_stats(enroll, cohort, top_n)
    mu_t, sd_t = top_n_stats(test, cohort, top_n)  # [1] for one test: it broadcasts
    raw = np.asarray(raw, dtype=np.float32)
    return (0.5 * ((raw - mu_e) / sd_e + (raw - mu_t) / sd_t)).astype(np.float32)
