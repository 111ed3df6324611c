"""MIG on codes whose value is known by hand: 1 for a perfect code, 0.5 for a worked example,
about 0 for random codes and for a code that duplicates one factor."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from training.disentangle.mig import mig, mutual_information


def _grid(*sizes: int) -> np.ndarray:
    return np.array(list(itertools.product(*(range(s) for s in sizes))))


def test_a_perfectly_disentangled_code_scores_one() -> None:
    factors = _grid(3, 4, 5)  # every combination once: the factors are independent
    codes = factors.astype(float) * np.array([0.7, -2.0, 0.1]) + np.array([5.0, 0.0, -1.0])
    score, gaps = mig(codes, factors)
    assert score == pytest.approx(1.0) and gaps == pytest.approx([1.0, 1.0, 1.0])


def test_the_worked_example_scores_one_half() -> None:
    # v1, v2 uniform bits; z1 = v1, z2 = v1 AND v2. With h(p) the binary entropy:
    # I(z1; v1) = ln 2, I(z1; v2) = 0, I(z2; v1) = I(z2; v2) = h(1/4) − ½ ln 2.
    # Gap(v1) = (ln 2 − I(z2; v1)) / ln 2, gap(v2) = I(z2; v2) / ln 2: they add up to 1, MIG = ½.
    factors = _grid(2, 2)
    codes = np.stack([factors[:, 0], factors[:, 0] & factors[:, 1]], 1).astype(float)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert mutual_information(codes[:, 1], factors[:, 0]) == pytest.approx(h - 0.5 * math.log(2))
    score, gaps = mig(codes, factors)
    assert gaps == pytest.approx(
        [(math.log(2) - (h - 0.5 * math.log(2))) / math.log(2), (h - 0.5 * math.log(2)) / math.log(2)]
    )
    assert score == pytest.approx(0.5)


def test_random_and_duplicated_codes_score_about_zero() -> None:
    factors = np.repeat(_grid(4, 4), 50, axis=0)
    rng = np.random.default_rng(0)
    assert mig(rng.standard_normal((len(factors), 4)), factors)[0] < 0.05
    both = np.stack([factors[:, 0], factors[:, 0] + 0.01], 1).astype(float)  # two latents hold v1, none v2
    assert mig(both, factors)[0] == pytest.approx(0.0, abs=1e-9)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="expected codes"):
        mig(np.zeros((4, 1)), np.zeros((4, 1)))
