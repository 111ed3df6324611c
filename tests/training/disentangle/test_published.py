"""The Color-dSprites and MPI3D loaders on small fake files written in the published layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.disentangle.groups import merge
from training.disentangle.published import MPI3D_SIZES, block_mean, load_color_dsprites, load_mpi3d


def test_color_dsprites_keeps_the_factors_and_colours_only_the_sprite(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 50
    classes = np.stack([np.zeros(n, int)] + [rng.integers(0, k, n) for k in (3, 6, 40, 32, 32)], 1)
    imgs = np.zeros((n, 64, 64), dtype=np.uint8)
    for i in range(n):  # a square whose corner encodes the row: its factors must come with it
        imgs[i, classes[i, 4] : classes[i, 4] + 8, classes[i, 5] : classes[i, 5] + 8] = 1
    path = tmp_path / "dsprites.npz"
    np.savez(path, imgs=imgs, latents_classes=classes, latents_values=classes.astype(float))
    name, names, images, factors = load_color_dsprites(path, 10, size=64, seed=1)
    assert name == "color-dsprites" and names == ("shape", "scale", "orientation", "x", "y")
    assert images.shape == (10, 3, 64, 64) and factors.shape == (10, 5)
    for image, row in zip(images, factors, strict=True):
        on = image.max(0) > 0
        r, c = np.nonzero(on)
        assert (r.min(), c.min()) == (row[3], row[4]) and on.sum() == 64
        colour = image[:, r[0], c[0]]
        assert ((0.5 <= colour) & (colour <= 1.0)).all()
        np.testing.assert_allclose(image[:, on].T, np.broadcast_to(colour, (64, 3)))  # one colour per sprite
    half = load_color_dsprites(path, 10, size=32, seed=1)[2]
    np.testing.assert_allclose(half, images.reshape(10, 3, 32, 2, 32, 2).mean((3, 5)), rtol=1e-6)
    with pytest.raises(ValueError, match="asked for 60 rows of 50"):
        load_color_dsprites(path, 60)


def test_mpi3d_factors_are_the_unravelled_index(tmp_path: Path) -> None:
    # The real file has 1,036,800 rows; a fake one of that many 4×4 images stays small (50 MB).
    total = int(np.prod(MPI3D_SIZES))
    images = np.zeros((total, 4, 4, 3), dtype=np.uint8)
    index = np.arange(total)
    images[:, 0, 0, 0] = index % 251  # pixels that encode the row, to check the pairing
    images[:, 0, 0, 1] = (index // 251) % 251
    images[:, 0, 0, 2] = index // (251 * 251)
    path = tmp_path / "mpi3d_toy.npz"
    np.savez(path, images=images)
    name, names, got, factors = load_mpi3d(path, 20, size=4, seed=3)
    assert name == "mpi3d" and len(names) == 7 and got.shape == (20, 3, 4, 4)
    pixel = np.rint(got[:, :, 0, 0] * 255).astype(np.int64)
    rows = pixel[:, 0] + 251 * pixel[:, 1] + 251 * 251 * pixel[:, 2]
    strides = np.cumprod((1,) + MPI3D_SIZES[::-1])[:-1][::-1]  # C order, written out
    np.testing.assert_array_equal(factors @ strides, rows)
    assert (factors < np.array(MPI3D_SIZES)).all()
    np.savez(tmp_path / "short.npz", images=images[:10])
    with pytest.raises(ValueError, match="expected images"):
        load_mpi3d(tmp_path / "short.npz", 2)


def test_published_parts_merge_with_procedural_ones() -> None:
    sprite = ("a", ("f", "g"), np.zeros((4, 3, 8, 8), np.float32), np.ones((4, 2), np.int64))
    other = ("b", ("h",), np.ones((3, 3, 8, 8), np.float32), np.zeros((3, 1), np.int64))
    data = merge([sprite, other], seed=0)
    assert data.names == ("a", "b") and data.factors.shape == (7, 2)
    assert (data.factors[data.groups == 1][:, 1] == -1).all()
    with pytest.raises(ValueError, match="multiple"):
        block_mean(np.zeros((1, 3, 10, 10)), 4)
