"""The mutual information gap (MIG, Chen et al. 2018), as disentanglement_lib computes it.

Each latent dimension is discretised into ``bins`` equal-width bins over its range; for each
ground-truth factor k, with I(z_j; v_k) the discrete mutual information (nats) and H(v_k) the
factor's entropy, the gap is (I_(1) − I_(2)) / H(v_k) between the two most informative latents;
MIG is the mean gap over factors. 1 for a code where each factor lives in exactly one latent that
holds no other factor; about 0 when no latent singles a factor out.
"""

from __future__ import annotations

import numpy as np


def discretise(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """int [N, J]: each column's equal-width bin index over its own range (``np.histogram``'s edges)."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins=bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def entropy(labels: np.ndarray) -> float:
    """Entropy (nats) of a discrete variable's empirical distribution."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Discrete mutual information (nats) of two label arrays, from their contingency table."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / outer[nz])).sum())


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> tuple[float, list[float]]:
    """(MIG, per-factor gaps) of latent codes [N, J] (J >= 2) against discrete factors [N, K].

    Factors with a single value (zero entropy) are skipped, as they carry nothing to capture.
    """
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors) or codes.shape[1] < 2:
        raise ValueError(f"expected codes [N, J >= 2] and factors [N, K], got {codes.shape} and {factors.shape}")
    discrete = discretise(codes, bins)
    gaps = []
    for k in range(factors.shape[1]):
        h = entropy(factors[:, k])
        if h == 0:
            continue
        info = sorted((mutual_information(discrete[:, j], factors[:, k]) for j in range(codes.shape[1])), reverse=True)
        gaps.append((info[0] - info[1]) / h)
    if not gaps:
        raise ValueError("every factor is constant")
    return float(np.mean(gaps)), gaps
