"""The procedural sprites: each factor changes the image the way it says, and only that way."""

from __future__ import annotations

import numpy as np
import pytest

from training.disentangle.sprites import SpriteFactors, colour_rgb, render, sample_factors

SPEC = SpriteFactors(colours=6, scales=4, rotations=8, positions=8, size=48)


def _row(shape=0, colour=0, scale=3, rotation=0, x=3, y=3) -> list[int]:
    return [shape, colour, scale, rotation, x, y]


def _mask(image: np.ndarray) -> np.ndarray:
    return image.max(0) > 0


def test_colour_fills_the_shape_with_the_requested_hue() -> None:
    images = render(np.array([_row(colour=c) for c in range(6)]), SPEC)
    for c, image in enumerate(images):
        pixels = image[:, _mask(image)].T
        np.testing.assert_allclose(pixels, np.broadcast_to(colour_rgb(c, 6), pixels.shape))
    np.testing.assert_allclose(colour_rgb(2, 6), [0.0, 1.0, 0.0], atol=1e-6)  # hue 1/3 is green


def test_scale_grows_the_area_quadratically_and_position_moves_the_centroid() -> None:
    # 128 pixels, so that pixel counting is close to the area: half-size 0.09 → 0.18 of the frame.
    fine = render(np.array([_row(scale=0), _row(scale=3)]), SpriteFactors(size=128))
    small, large = _mask(fine[0]).sum(), _mask(fine[1]).sum()
    assert small == pytest.approx((2 * 0.09 * 128) ** 2, rel=0.1)
    assert large / small == pytest.approx(4.0, rel=0.05)
    images = render(np.array([_row(x=0), _row(x=7), _row(y=0), _row(y=7)]), SPEC)
    cols = [np.nonzero(_mask(images[i]))[1].mean() for i in (0, 1)]
    rows = [np.nonzero(_mask(images[i]))[0].mean() for i in (2, 3)]
    assert cols[1] - cols[0] == pytest.approx((1 - 2 * 0.18) * 48, abs=1.0)
    assert rows[0] > rows[1]  # y grows upwards: y = 0 is near the bottom rows


def test_rotation_turns_the_ellipse_and_leaves_a_square_by_a_right_angle() -> None:
    images = render(
        np.array([_row(shape=1), _row(shape=1, rotation=4), _row(shape=0), _row(shape=0, rotation=4)]), SPEC
    )
    ellipse0, ellipse90 = _mask(images[0]), _mask(images[1])
    assert (ellipse0 != ellipse90).any()

    def extent(mask: np.ndarray) -> tuple[int, int]:  # (rows spanned, columns spanned)
        r, c = np.nonzero(mask)
        return int(r.max() - r.min() + 1), int(c.max() - c.min() + 1)

    (h0, w0), (h90, w90) = extent(ellipse0), extent(ellipse90)
    assert w0 > 1.5 * h0 and h90 > 1.5 * w90  # the long axis turned from horizontal to vertical
    assert np.abs(ellipse0.sum() - ellipse90.sum()) <= 0.05 * ellipse0.sum()
    assert (_mask(images[2]) == _mask(images[3])).mean() > 0.98  # a square turned by 90° is itself


def test_factor_rows_are_checked_and_sampling_is_seeded() -> None:
    with pytest.raises(ValueError, match="factor rows"):
        render(np.array([[3, 0, 0, 0, 0, 0]]), SPEC)  # only 3 shapes
    np.testing.assert_array_equal(sample_factors(10, SPEC, seed=1), sample_factors(10, SPEC, seed=1))
    assert (sample_factors(1000, SPEC).max(0) == np.array(SPEC.sizes) - 1).all()
