"""AS-norm against a direct, independently written computation (loops, sorted lists, statistics)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from contracts.score_norm import as_norm, top_n_stats


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def _direct(e: list[float], t: list[float], cohort: list[list[float]], n: int) -> float:
    """The formula written out: top-n cohort cosines of each side, their mean and population σ."""

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b))

    s = dot(e, t)
    top_e = sorted((dot(e, c) for c in cohort), reverse=True)[:n]
    top_t = sorted((dot(t, c) for c in cohort), reverse=True)[:n]
    z_e = (s - statistics.fmean(top_e)) / statistics.pstdev(top_e)
    z_t = (s - statistics.fmean(top_t)) / statistics.pstdev(top_t)
    return 0.5 * (z_e + z_t)


def test_as_norm_matches_the_formula_written_out():
    rng = np.random.default_rng(3)
    cohort, enroll, test = (
        _unit(rng.normal(size=(9, 5))),
        _unit(rng.normal(size=(4, 5))),
        _unit(rng.normal(size=(4, 5))),
    )
    raw = np.einsum("md,md->m", enroll, test)
    got = as_norm(raw, enroll, test, cohort, top_n=3)
    want = [_direct(e.tolist(), t.tolist(), cohort.tolist(), 3) for e, t in zip(enroll, test)]
    assert got.shape == (4,) and np.allclose(got, want, atol=1e-5)


def test_one_test_against_many_templates_and_a_hand_computed_case():
    cohort = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    enroll = np.array([[1.0, 0.0]])  # cohort cosines 1, 0, -1 → top 2: {1, 0}: μ 0.5, σ 0.5
    test = np.array([0.0, 1.0])  # cohort cosines 0, 1, 0 → top 2: {1, 0}: μ 0.5, σ 0.5
    # raw cosine 0: ½[(0 − 0.5)/0.5 + (0 − 0.5)/0.5] = −1
    assert as_norm(np.array([0.0]), enroll, test, cohort, top_n=2)[0] == pytest.approx(-1.0)
    mu, sd = top_n_stats(enroll, cohort, 2)
    assert mu[0] == pytest.approx(0.5) and sd[0] == pytest.approx(0.5)
    rng = np.random.default_rng(5)
    c, e, t = _unit(rng.normal(size=(6, 3))), _unit(rng.normal(size=(3, 3))), _unit(rng.normal(size=3))
    got = as_norm(e @ t, e, t, c, top_n=10)  # top_n above the cohort size: the whole cohort
    assert np.allclose(got, [_direct(x.tolist(), t.tolist(), c.tolist(), 6) for x in e], atol=1e-5)
    assert not math.isnan(float(got[0]))


def test_top_n_must_be_positive():
    with pytest.raises(ValueError, match="top_n"):
        top_n_stats(np.ones((1, 2)), np.ones((3, 2)), 0)
