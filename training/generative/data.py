"""Labelled image sets for the §6 VAEs: pixels float32 in [0, 1], shape [N, H, W], labels int64.

Sources:
- ``digits``: scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes; ships in the
  wheel, no download), pixel values 0…16 scaled to [0, 1];
- ``idx``: the MNIST layout (``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte``, ``t10k-…``,
  optionally ``.gz``), which EMNIST and Kuzushiji-MNIST also use; EMNIST stores images transposed
  (``transpose=True`` puts them upright);
- ``npz``: Kuzushiji's ``<prefix>-train-imgs.npz`` / ``<prefix>-train-labels.npz`` (``arr_0``).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

# idx type codes (the third magic byte) → numpy dtype, big-endian as the format stores them.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class LabelledImages:
    """``images`` float32 [N, H, W] in [0, 1]; ``labels`` int64 [N] in 0 … classes-1."""

    images: np.ndarray
    labels: np.ndarray
    classes: int

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or len(self.images) != len(self.labels):
            raise ValueError(f"expected images [N, H, W] and N labels, got {self.images.shape}, {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def take(self, index: np.ndarray) -> LabelledImages:
        return LabelledImages(self.images[index], self.labels[index], self.classes)


def _labelled(images: np.ndarray, labels: np.ndarray, scale: float) -> LabelledImages:
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise ValueError("labels must be >= 0")
    return LabelledImages((images.astype(np.float32) / scale).clip(0.0, 1.0), labels, int(labels.max()) + 1)


def load_digits_images() -> LabelledImages:
    """scikit-learn's 8×8 digits, pixels / 16."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _labelled(np.asarray(bunch.images), np.asarray(bunch.target), 16.0)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (``.gz`` too): magic 0x0000 + type + ndim, then ndim big-endian uint32 sizes."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 1
    body = raw[4 + 4 * ndim :]
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"{path}: {len(body)} data bytes, the header says {count * dtype.itemsize}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: neither {stem} nor {stem}.gz")


def load_idx_split(folder: Path, split: str, *, prefix: str = "", transpose: bool = False) -> LabelledImages:
    """``split`` ``train`` or ``t10k`` of an MNIST-layout folder (``prefix``: ``emnist-balanced-``)."""
    images = read_idx(_find(Path(folder), f"{prefix}{split}-images-idx3-ubyte"))
    labels = read_idx(_find(Path(folder), f"{prefix}{split}-labels-idx1-ubyte"))
    if transpose:
        images = images.transpose(0, 2, 1)
    return _labelled(images, labels - labels.min() if prefix.startswith("emnist-letters") else labels, 255.0)


def load_npz_split(folder: Path, split: str, *, prefix: str = "kmnist") -> LabelledImages:
    """``split`` ``train`` or ``test`` of a Kuzushiji npz folder (arrays under ``arr_0``)."""
    folder = Path(folder)
    with np.load(folder / f"{prefix}-{split}-imgs.npz") as f:
        images = f["arr_0"]
    with np.load(folder / f"{prefix}-{split}-labels.npz") as f:
        labels = f["arr_0"]
    return _labelled(images, labels, 255.0)


def split_stratified(n_labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask taking ``fraction`` of each class (at least one), chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(n_labels), dtype=bool)
    for c in np.unique(n_labels):
        idx = np.flatnonzero(n_labels == c)
        k = max(1, round(fraction * len(idx)))
        mask[rng.choice(idx, size=min(k, len(idx)), replace=False)] = True
    return mask


class ImageBatches(Dataset):
    """Step-indexed batches (``Trainer``'s dataset contract): batch ``i`` is a pure function of
    (seed, rank, i): epoch ``e = i // per_epoch`` shuffles with seed (seed, rank, e).

    Items: ``images`` float32 [B, H, W], ``labels`` int64 [B], ``labelled`` bool [B] (whether the
    label may be used: the semi-supervised M2 sees the others unlabelled).
    """

    def __init__(
        self, data: LabelledImages, labelled: np.ndarray, batch_size: int, steps: int, seed: int, rank: int = 0
    ) -> None:
        if batch_size > len(data):
            raise ValueError(f"batch_size {batch_size} exceeds the {len(data)} training images")
        self.data, self.labelled, self.batch_size = data, labelled, batch_size
        self.steps, self.seed, self.rank = steps, seed, rank
        self.per_epoch = len(data) // batch_size

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        epoch, within = divmod(int(i), self.per_epoch)
        order = np.random.default_rng([self.seed, self.rank, epoch]).permutation(len(self.data))
        idx = order[within * self.batch_size : (within + 1) * self.batch_size]
        return {"images": self.data.images[idx], "labels": self.data.labels[idx], "labelled": self.labelled[idx]}
