"""FID, KID and requested-class accuracy against values derived by hand or in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from training.generative.metrics import (
    fid,
    frechet_distance,
    kid,
    polynomial_mmd2,
    requested_class_accuracy,
)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form() -> None:
    # Commuting (diagonal) covariances: W2² = ‖μ₁ − μ₂‖² + Σ (σ₁ − σ₂)².
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])  # variances
    expected = 1.0 + 0.0 + 4.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_to_identity_uses_the_eigenvalues() -> None:
    # Σ₁ = I, Σ₂ = A (full): Tr(I + A − 2 A^½) = Σ (1 − √λᵢ)² over A's eigenvalues.
    rng = np.random.default_rng(3)
    b = rng.standard_normal((4, 4))
    a = b @ b.T + 0.5 * np.eye(4)
    lam = np.linalg.eigvalsh(a)
    expected = float(((1 - np.sqrt(lam)) ** 2).sum()) + 2.0**2
    mu2 = np.array([2.0, 0.0, 0.0, 0.0])
    assert frechet_distance(np.zeros(4), np.eye(4), mu2, a) == pytest.approx(expected, rel=1e-8)


def test_fid_of_identical_sets_is_zero_and_of_shifted_samples_near_the_shift() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    # Two samples of N(0, I) and N(2·e₁, I): FID → 4 as the samples grow.
    y = rng.standard_normal((4000, 3)) + np.array([2.0, 0.0, 0.0])
    assert fid(x, y) == pytest.approx(4.0, abs=0.25)


def test_polynomial_mmd2_matches_a_hand_computed_case() -> None:
    # d = 1, k(a, b) = (ab + 1)³. x = {0, 1}: k(0,1) = 1 → within-x mean 1. y = {2, 3}: k(2,3) = 343.
    # Cross: k(0,2) = 1, k(0,3) = 1, k(1,2) = 27, k(1,3) = 64 → mean 93/4. MMD² = 1 + 343 − 2·93/4.
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    assert polynomial_mmd2(x, y) == pytest.approx(1 + 343 - 2 * 93 / 4)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((600, 5)), rng.standard_normal((600, 5))
    same, _ = kid(a, b, subsets=10, subset_size=200)
    shifted, _ = kid(a, b + 1.0, subsets=10, subset_size=200)
    assert abs(same) < 0.05
    assert shifted > 10 * max(abs(same), 0.01)


def test_requested_class_accuracy() -> None:
    assert requested_class_accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == 0.75
    with pytest.raises(ValueError):
        requested_class_accuracy(np.array([0]), np.array([0, 1]))


def test_fid_with_a_dead_feature_is_still_the_distance_of_the_live_ones() -> None:
    # A constant (dead ReLU) feature makes both covariances singular; it adds nothing to the distance.
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3000, 2)), rng.standard_normal((3000, 2)) + np.array([1.0, 0.0])
    dead = np.zeros((3000, 1))
    assert fid(np.hstack([a, dead]), np.hstack([b, dead])) == pytest.approx(fid(a, b), abs=1e-3)
