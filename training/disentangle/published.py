"""Loaders for the published §7 datasets, when their files are present (nothing downloads).

- Color-dSprites: DeepMind's ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (``imgs`` uint8
  [737280, 64, 64] in {0, 1}, ``latents_classes`` int [N, 6]: colour (always 0), shape, scale,
  orientation, x, y), each image coloured as disentanglement_lib's ``color_dsprites`` does: the
  sprite times an RGB colour drawn uniformly from [0.5, 1]³ per image (a nuisance, not a factor).
- MPI3D (toy / realistic / real): ``mpi3d_*.npz`` with ``images`` uint8 [1036800, 64, 64, 3] in
  the factors' C order (colour 6, shape 6, size 2, camera height 3, background 3, horizontal 40,
  vertical 40), so a row's factors are its index unravelled.
- 3DShapes (``3dshapes.h5``) needs h5py, which this environment does not ship: not loaded here.

Each loader draws ``count`` rows with ``seed`` and returns a part for ``groups.merge``: (name,
factor names, images float32 [n, 3, size, size] in [0, 1], factor rows [n, K]); 64-pixel images
are reduced to ``size`` by block means (``size`` must divide 64).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DSPRITES_FACTORS = ("shape", "scale", "orientation", "x", "y")
MPI3D_FACTORS = (
    "object_colour",
    "object_shape",
    "object_size",
    "camera_height",
    "background",
    "horizontal",
    "vertical",
)
MPI3D_SIZES = (6, 6, 2, 3, 3, 40, 40)

Part = tuple[str, tuple[str, ...], np.ndarray, np.ndarray]


def block_mean(images: np.ndarray, size: int) -> np.ndarray:
    """[n, 3, S, S] → [n, 3, size, size] by averaging ``S / size`` square blocks."""
    s = images.shape[-1]
    if s % size:
        raise ValueError(f"image size {s} is not a multiple of {size}")
    f = s // size
    return images.reshape(*images.shape[:2], size, f, size, f).mean((3, 5))


def _pick(total: int, count: int, seed: int) -> np.ndarray:
    if count > total:
        raise ValueError(f"asked for {count} rows of {total}")
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))


def load_color_dsprites(path: Path, count: int, size: int = 64, seed: int = 0) -> Part:
    """``count`` coloured dSprites rows (module docstring)."""
    with np.load(Path(path)) as f:
        imgs, classes = f["imgs"], f["latents_classes"]
        if imgs.ndim != 3 or classes.ndim != 2 or classes.shape[1] != 6 or len(imgs) != len(classes):
            raise ValueError(f"{path}: expected imgs [N, H, W] and latents_classes [N, 6]")
        rows = _pick(len(imgs), count, seed)
        sprites = imgs[rows].astype(np.float32)
        factors = classes[rows][:, 1:].astype(np.int64)
    colour = np.random.default_rng([seed, 1]).uniform(0.5, 1.0, (count, 3, 1, 1)).astype(np.float32)
    return "color-dsprites", DSPRITES_FACTORS, block_mean(sprites[:, None] * colour, size), factors


def load_mpi3d(path: Path, count: int, size: int = 64, seed: int = 0) -> Part:
    """``count`` MPI3D rows (module docstring)."""
    with np.load(Path(path)) as f:
        images = f["images"]
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) != int(np.prod(MPI3D_SIZES)):
            raise ValueError(
                f"{path}: expected images [{int(np.prod(MPI3D_SIZES))}, H, W, 3], got {list(images.shape)}"
            )
        rows = _pick(len(images), count, seed)
        picked = images[rows].astype(np.float32) / 255.0
    factors = np.stack(np.unravel_index(rows, MPI3D_SIZES), 1).astype(np.int64)
    return "mpi3d", MPI3D_FACTORS, block_mean(picked.transpose(0, 3, 1, 2), size), factors
