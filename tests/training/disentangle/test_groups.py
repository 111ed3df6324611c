"""The 3DShapes-like and MPI3D-like groups and the merge: every factor changes the image, the
same factors give the same image, and the merge keeps each group's factors behind hidden ids."""

from __future__ import annotations

import numpy as np
import pytest

from training.disentangle.groups import GROUPS, group, merged_groups
from training.disentangle.mpi3d import Mpi3DFactors, render_mpi3d, sample_mpi3d
from training.disentangle.shapes3d import Shapes3DFactors, render_shapes3d, sample_shapes3d

CASES = [
    (Shapes3DFactors(), render_shapes3d, sample_shapes3d),
    (Mpi3DFactors(), render_mpi3d, sample_mpi3d),
]


@pytest.mark.parametrize(("spec", "render", "sample"), CASES)
def test_each_factor_value_changes_the_image(spec, render, sample) -> None:
    for base in sample(5, spec, seed=3):
        reference = render(base[None], spec)[0]
        for k, values in enumerate(spec.sizes):
            rows = np.repeat(base[None], values, 0)
            rows[:, k] = np.arange(values)
            images = render(rows, spec)
            for v in range(values):
                if v != base[k]:
                    changed = np.abs(images[v] - reference).max(0) > 1e-3
                    assert changed.sum() >= 2, f"{spec.NAMES[k]} {base[k]} → {v} left the image unchanged"


@pytest.mark.parametrize(("spec", "render", "sample"), CASES)
def test_same_factors_same_image_and_bad_rows_refused(spec, render, sample) -> None:
    rows = sample(20, spec, seed=1)
    first, again = render(rows, spec), render(rows.copy(), spec)
    assert first.shape == (20, 3, 32, 32) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert 0.0 <= first.min() and first.max() <= 1.0
    assert len({im.tobytes() for im in first}) == 20  # distinct rows, distinct images
    np.testing.assert_array_equal(sample(20, spec, seed=1), rows)
    with pytest.raises(ValueError, match="factor rows"):
        render(np.array([spec.sizes]), spec)  # every index one past its range


def test_shapes3d_regions_carry_their_hues() -> None:
    from training.disentangle.sprites import colour_rgb

    spec = Shapes3DFactors()
    image = render_shapes3d(np.array([[1, 3, 5, 0, 2, 2]]), spec)[0]  # orientation 2: level horizon
    top, bottom = image[:, 0, 0], image[:, -1, 0]  # a wall corner and a floor corner
    np.testing.assert_allclose(top / top.max(), colour_rgb(3, 6), atol=1e-6)
    np.testing.assert_allclose(bottom / bottom.max(), colour_rgb(1, 6), atol=1e-6)
    centre = image[:, 24, 16]  # inside the sphere
    np.testing.assert_allclose(centre / centre.max(), colour_rgb(5, 6), atol=1e-6)


def test_merged_groups_hide_ids_beside_padded_factors() -> None:
    data = merged_groups(per_group=30, size=32, seed=2)
    assert data.names == GROUPS and len(data) == 90
    assert np.bincount(data.groups).tolist() == [30, 30, 30]
    assert data.images.shape == (90, 3, 32, 32) and data.factors.shape == (90, 7)
    for g, name in enumerate(GROUPS):
        images, factors = data.of_group(g)
        assert factors.shape[1] == len(group(name).factor_names) and (factors >= 0).all()
        np.testing.assert_array_equal(group(name).render(factors), images)  # rows render to their images
        assert (data.factors[data.groups == g][:, factors.shape[1] :] == -1).all()
    with pytest.raises(ValueError, match="unknown group"):
        group("cars")
