"""Image sources on fake files written here byte by byte (idx, gzip, npz), digits, batches."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from training.generative.data import (
    ImageBatches,
    LabelledImages,
    load_digits_images,
    load_idx_split,
    load_npz_split,
    read_idx,
    split_stratified,
)


def _write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    # The MNIST format: 0x00 0x00, type 0x08 (ubyte), ndim, then big-endian uint32 sizes.
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_layout_reads_images_and_labels(tmp_path: Path, compress: bool) -> None:
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5) * 4
    labels = np.array([2, 0, 1], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, compress)
    got = load_idx_split(tmp_path, "train")
    assert got.images.shape == (3, 4, 5) and got.classes == 3
    assert got.images[1, 2, 3] == pytest.approx(images[1, 2, 3] / 255.0)
    assert got.labels.tolist() == [2, 0, 1]
    upright = load_idx_split(tmp_path, "train", transpose=True)  # EMNIST stores images transposed
    assert upright.images.shape == (3, 5, 4) and upright.images[1, 3, 2] == got.images[1, 2, 3]


def test_idx_rejects_a_bad_magic_and_a_short_body(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x00")
    with pytest.raises(ValueError, match="header says 5"):
        read_idx(tmp_path / "y")


def test_kuzushiji_npz_layout(tmp_path: Path) -> None:
    images = np.full((4, 6, 6), 255, dtype=np.uint8)
    np.savez(tmp_path / "kmnist-test-imgs.npz", images)  # savez names the array arr_0
    np.savez(tmp_path / "kmnist-test-labels.npz", np.array([0, 1, 2, 3], dtype=np.uint8))
    got = load_npz_split(tmp_path, "test")
    assert got.images.shape == (4, 6, 6) and got.images.max() == 1.0 and got.classes == 4


def test_digits_and_a_stratified_split() -> None:
    d = load_digits_images()
    assert d.images.shape == (1797, 8, 8) and d.classes == 10
    assert 0.0 <= d.images.min() and d.images.max() == 1.0
    held = split_stratified(d.labels, 0.2, seed=0)
    for c in range(10):
        n = (d.labels == c).sum()
        assert held[d.labels == c].sum() == round(0.2 * n)


def test_batches_are_a_pure_function_of_the_step() -> None:
    # Image i is the constant i / 100, so a batch's images name the rows it took.
    d = LabelledImages(np.repeat(np.arange(100, dtype=np.float32) / 100, 4).reshape(100, 2, 2), np.arange(100) % 2, 2)
    a = ImageBatches(d, np.ones(100, dtype=bool), 32, 10, seed=5)
    b = ImageBatches(d, np.ones(100, dtype=bool), 32, 10, seed=5)
    np.testing.assert_array_equal(a[7]["images"], b[7]["images"])
    rows = np.concatenate([a[i]["images"][:, 0, 0] for i in range(3)])  # one epoch: 3 batches of 32
    assert len(np.unique(rows)) == 96
    assert not np.array_equal(a[3]["images"], a[0]["images"])  # the next epoch reshuffles
    assert not np.array_equal(ImageBatches(d, np.ones(100, dtype=bool), 32, 10, seed=6)[0]["images"], a[0]["images"])
