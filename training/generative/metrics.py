"""§6 metrics on features of the independent classifier (``training.generative.classifier``).

FID and KID are computed here with numpy and ``scipy.linalg.sqrtm`` rather than torchmetrics:
torchmetrics is not a dependency of this project, and its ``FrechetInceptionDistance`` /
``KernelInceptionDistance`` are built around an Inception feature extractor on 299×299 RGB
images, which makes no sense for 8×8 digits; both formulas are short and tested here against
closed forms.

- ``fid``: ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½) of the two feature sets' Gaussian fits
  (Heusel et al. 2017);
- ``kid``: the unbiased estimator of MMD² with the polynomial kernel k(x, y) = (xᵀy / d + 1)³,
  averaged over random subsets (Bińkowski et al. 2018), with its spread over the subsets;
- ``requested_class_accuracy``: the fraction of samples generated for class y that the
  classifier labels y.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] of features [N, D] (N ≥ 2)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"expected features [N >= 2, D], got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """The Fréchet (2-Wasserstein) distance² between N(mu1, cov1) and N(mu2, cov2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            covmean = scipy.linalg.sqrtm(cov1 @ cov2)
            singular = not np.isfinite(covmean).all()
        except scipy.linalg.LinAlgWarning:
            singular = True
    if singular:  # a dead feature (zero variance) makes the product singular: regularise as pytorch-fid does
        offset = np.eye(len(cov1)) * 1e-6
        covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    covmean = np.real(covmean)  # rounding leaves a tiny imaginary part on PSD products
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D]."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(generated))


def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
    """Unbiased MMD² between samples x [m, D] and y [n, D] under k(a, b) = (aᵀb / D + 1)^degree."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** degree
    kyy = (y @ y.T / d + 1.0) ** degree
    kxy = (x @ y.T / d + 1.0) ** degree
    m, n = len(x), len(y)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


def kid(
    real: np.ndarray, generated: np.ndarray, *, subsets: int = 20, subset_size: int = 200, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of ``polynomial_mmd2`` over ``subsets`` random subsets of ``subset_size`` rows
    from each set (fewer rows when a set is smaller)."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    size = min(subset_size, len(real), len(generated))
    if size < 2:
        raise ValueError("KID needs at least 2 rows in each set")
    rng = np.random.default_rng(seed)
    values = [
        polynomial_mmd2(
            real[rng.choice(len(real), size, replace=False)], generated[rng.choice(len(generated), size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def requested_class_accuracy(requested: np.ndarray, predicted: np.ndarray) -> float:
    """Fraction of generated samples whose predicted class is the one they were generated for."""
    requested, predicted = np.asarray(requested), np.asarray(predicted)
    if requested.shape != predicted.shape or not requested.size:
        raise ValueError("requested and predicted must be non-empty and of one shape")
    return float((requested == predicted).mean())
