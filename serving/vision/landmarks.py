"""dlib's 5-point face landmark predictor (``shape_predictor_5_face_landmarks.dat``, CC0) in numpy.

A cascade of regression-tree ensembles (Kazemi & Sullivan, "One millisecond face alignment with an
ensemble of regression trees", CVPR 2014), as ``dlib/image_processing/shape_predictor.h`` runs it:

1. the shape starts as the mean shape, in the unit square of the face box;
2. each of the 15 cascades reads 800 grey pixels, each placed relative to one landmark
   (``anchor_idx``) by an offset (``delta``) that is rotated and scaled by the similarity that maps
   the mean shape onto the current one, then mapped from the unit square into the box and rounded
   to the nearest pixel (outside the image: 0);
3. each of its 500 depth-4 trees compares pixel pairs (``f[idx1] - f[idx2] > thresh`` → left
   child ``2i+1``, else ``2i+2``) and adds its leaf's shape increment.

The model file is ``export/importers/dlib_landmarks.py``'s ``.npz`` (no dlib at run time). All
arithmetic follows dlib's types (float32 shapes and offsets, float64 box map, sequential float32
sums), so the points match ``dlib.shape_predictor`` exactly on the faces tested, including dlib's
final rounding of each point to integer pixels.

Points, in dlib's order: 0/1 = outer/inner corner of the image-right eye (the subject's left eye),
2/3 = outer/inner corner of the image-left eye, 4 = base of the nose (subnasale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contracts.landmarks_npz import read_landmarks_npz


def _similarity_m(src_centered: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×2 part (c·R) of the least-squares similarity src → dst ([P, 2] each) in float64.

    dlib's ``find_similarity_transform`` (Umeyama 1991) solves it by SVD; for 2-D points the
    optimal proper similarity has this closed form, equal to Umeyama's up to float64 rounding.
    ``src_centered`` is src minus its mean (the predictor's mean shape: computed once).
    """
    d = dst.astype(np.float64)
    d = d - d.mean(0)
    s = src_centered
    norm = float((s * s).sum())
    if norm == 0.0:
        return np.eye(2)
    a = float((s * d).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    return np.array([[a, -b], [b, a]])


def _intensity(image: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Grey levels [N] float32 at integer pixels (px, py), 0 outside the image (dlib's rule).

    For an RGB image dlib's ``get_pixel_intensity`` is the truncated integer mean
    ``(r + g + b) / 3``; converting only the sampled pixels saves converting the whole image per
    face. Indices are clipped to pixel 0 and then masked, which is cheaper than compressing.
    """
    height, width = image.shape[:2]
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    flat = np.where(inside, py * width + px, 0)
    if image.ndim == 2:
        values = image.reshape(-1)[flat].astype(np.uint16)
    else:
        rgb = image.reshape(-1, image.shape[2])[flat, :3].astype(np.uint16)
        values = (rgb[:, 0] + rgb[:, 1] + rgb[:, 2]) // 3
    return (values * inside).astype(np.float32)


@dataclass(frozen=True)
class ShapePredictor5:
    """The cascade's arrays (C cascades, T trees each, S = 2^depth − 1 splits, F features, P points).

    ``initial_shape`` [P, 2] float32 (unit box coordinates); ``anchor_idx`` [C, F] int32;
    ``deltas`` [C, F, 2] float32; ``split_idx`` [C, T, S, 2] int32 (idx1, idx2);
    ``split_thresh`` [C, T, S] float32; ``leaf_values`` [C, T, S + 1, P, 2] float32.
    """

    initial_shape: np.ndarray
    anchor_idx: np.ndarray
    deltas: np.ndarray
    split_idx: np.ndarray
    split_thresh: np.ndarray
    leaf_values: np.ndarray
    # Derived in __post_init__ (not arguments, not compared): contiguous per-cascade views.
    _idx1: np.ndarray = field(init=False, repr=False, compare=False)
    _idx2: np.ndarray = field(init=False, repr=False, compare=False)
    _thresh: np.ndarray = field(init=False, repr=False, compare=False)
    _leaves: np.ndarray = field(init=False, repr=False, compare=False)
    _init_centered: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        c, t, s, _ = self.split_idx.shape
        f = self.anchor_idx.shape[1]
        p = self.initial_shape.shape[0]
        expected = {
            "anchor_idx": (c, f),
            "deltas": (c, f, 2),
            "split_thresh": (c, t, s),
            "leaf_values": (c, t, s + 1, p, 2),
            "initial_shape": (p, 2),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")
        if (s + 1) & s:
            raise ValueError(f"{s} splits per tree: trees must be complete (2^depth − 1 splits)")
        if self.split_idx.min() < 0 or self.split_idx.max() >= f or self.anchor_idx.max() >= p:
            raise ValueError("split or anchor index out of range")
        # Contiguous per-cascade views for predict(): gathers from strided arrays cost 2× more.
        flat = {
            "_idx1": np.ascontiguousarray(self.split_idx[..., 0].reshape(c, -1), dtype=np.intp),
            "_idx2": np.ascontiguousarray(self.split_idx[..., 1].reshape(c, -1), dtype=np.intp),
            "_thresh": np.ascontiguousarray(self.split_thresh.reshape(c, -1)),
            "_leaves": np.ascontiguousarray(self.leaf_values.reshape(c, t * (s + 1), p, 2)),
            "_init_centered": self.initial_shape.astype(np.float64) - self.initial_shape.astype(np.float64).mean(0),
        }
        for name, value in flat.items():
            object.__setattr__(self, name, value)

    @property
    def depth(self) -> int:
        return int(self.split_idx.shape[2] + 1).bit_length() - 1

    @property
    def num_points(self) -> int:
        return int(self.initial_shape.shape[0])

    @classmethod
    def load(cls, path: Path) -> ShapePredictor5:
        """Read the ``.npz`` of ``contracts.landmarks_npz`` (written by the landmark importer)."""
        return cls(**read_landmarks_npz(path))

    def predict_unit(self, gray_or_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The final shape [P, 2] float32 in the box's unit square (before mapping to pixels)."""
        # Contiguous once here: every cascade gathers from a flat view of the image.
        image = np.ascontiguousarray(gray_or_rgb)
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
            raise ValueError(f"expected a uint8 [H, W] or [H, W, 3] image, got {image.dtype} {image.shape}")
        left, top, right, bottom = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
        # dlib's unnormalizing_tform: (0,0) → top-left corner, (1,1) → bottom-right corner (both
        # inclusive pixel coordinates, so the scale is right − left, not the width + 1).
        scale = np.array([right - left, bottom - top])
        offset = np.array([left, top])
        num_trees, splits = self.split_idx.shape[1:3]
        # Offsets of each tree's splits and leaves in a cascade's flattened arrays.
        row, leaf_row = np.arange(num_trees) * splits, np.arange(num_trees) * (splits + 1)
        shape = self.initial_shape.copy()
        for c in range(self.split_idx.shape[0]):
            m = _similarity_m(self._init_centered, shape).astype(np.float32)
            d = self.deltas[c]
            anchor = shape[self.anchor_idx[c]]
            # float32 as dlib: (m·delta) then + anchor, each step rounded to float32.
            ux = (m[0, 0] * d[:, 0] + m[0, 1] * d[:, 1]) + anchor[:, 0]
            uy = (m[1, 0] * d[:, 0] + m[1, 1] * d[:, 1]) + anchor[:, 1]
            px = np.floor(scale[0] * ux.astype(np.float64) + offset[0] + 0.5).astype(np.int64)
            py = np.floor(scale[1] * uy.astype(np.float64) + offset[1] + 0.5).astype(np.int64)
            features = _intensity(image, px, py)

            # Every split's test at once ([T·S], cheap), then walk the trees level by level.
            go_left = (features[self._idx1[c]] - features[self._idx2[c]] > self._thresh[c]).view(np.int8)
            node = np.zeros(num_trees, np.int64)
            for _ in range(self.depth):
                node = 2 * node + 2 - go_left[row + node]
            leaves = self._leaves[c][leaf_row + node - splits]
            # dlib adds the trees' increments one by one in float32. Reducing a C-contiguous
            # [T + 1, 2P] array along axis 0 adds whole rows in order, the same sequential sum
            # (numpy's pairwise summation applies only along the contiguous axis); a pairwise or
            # float64 sum would move points by ~1e-4 px and, now and then, a rounded pixel.
            stacked = np.concatenate([shape.reshape(1, -1), leaves.reshape(num_trees, -1)], axis=0)
            shape = np.add.reduce(stacked, axis=0).reshape(-1, 2)
        return shape

    def box_for(self, points: np.ndarray) -> np.ndarray:
        """The square box [4] (integer x1, y1, x2, y2) in which the mean shape best fits ``points``
        [P, 2] (least squares over a scale and a shift): the box the cascade was trained to start
        from, for a face whose landmarks are ``points``."""
        unit = self.initial_shape.astype(np.float64)
        pts = np.asarray(points, dtype=np.float64)
        du, dp = unit - unit.mean(0), pts - pts.mean(0)
        scale = float((du * dp).sum() / (du**2).sum())
        left, top = pts.mean(0) - scale * unit.mean(0)
        return np.round(np.array([left, top, left + scale, top + scale])).astype(np.float32)

    def predict(self, gray_or_rgb: np.ndarray, box: np.ndarray, *, round_to_pixels: bool = True) -> np.ndarray:
        """Landmarks [5, 2] float32 (x, y) in image pixels for the face in ``box``.

        ``gray_or_rgb``: uint8 [H, W] or [H, W, 3] RGB. ``box``: [4] x1, y1, x2, y2 — dlib's
        ``rectangle(left, top, right, bottom)``; pass integers to match ``dlib.shape_predictor``
        (which only takes integer rectangles). dlib returns integer points (rounded half up);
        ``round_to_pixels=False`` keeps the sub-pixel positions instead.
        """
        unit = self.predict_unit(gray_or_rgb, box)
        left, top, right, bottom = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
        points = unit.astype(np.float64) * np.array([right - left, bottom - top]) + np.array([left, top])
        if round_to_pixels:
            points = np.floor(points + 0.5)
        return points.astype(np.float32)
