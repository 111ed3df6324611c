"""A procedural MPI3D-like image group (METHODS §7): a two-joint robot arm holding an object.

Factors (discrete indices, the order of ``Mpi3DFactors.NAMES``): ``object_colour`` (hues),
``object_shape`` (disc, square, triangle, bar), ``object_size`` (small, large),
``camera_height`` (low, middle, high: the scene moves up and is foreshortened vertically),
``background`` (three tinted backgrounds), ``horizontal`` (the first joint's angle, 40° … 140°)
and ``vertical`` (the second joint's angle relative to the first link, −70° … +70°). The arm is
drawn as thick grey segments from a base at the bottom centre; the object sits at its tip.
Images are RGB float32 [N, 3, S, S] in [0, 1], rendered by per-pixel tests (deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.disentangle.sprites import colour_rgb

MPI3D_SHAPES = ("disc", "square", "triangle", "bar")
BACKGROUNDS = np.array([[0.30, 0.30, 0.36], [0.46, 0.36, 0.28], [0.24, 0.40, 0.30]], dtype=np.float32)
ARM_GREY = 0.75


@dataclass(frozen=True)
class Mpi3DFactors:
    """How many values each factor takes; ``sizes`` in the order of ``NAMES``."""

    colours: int = 6
    camera_heights: int = 3
    angles: int = 8
    size: int = 32

    NAMES = ("object_colour", "object_shape", "object_size", "camera_height", "background", "horizontal", "vertical")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.colours, len(MPI3D_SHAPES), 2, self.camera_heights, len(BACKGROUNDS), self.angles, self.angles)


def _segment_distance(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    t = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / max(float(d @ d), 1e-12), 0, 1)
    return np.hypot(px - a[0] - t * d[0], py - a[1] - t * d[1])


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Points of the object's own frame (unit radius, v downwards) inside ``shape``."""
    if shape == "disc":
        return u**2 + v**2 <= 1
    if shape == "square":
        return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    if shape == "triangle":
        return (v <= 0.7) & (v >= -1.0 + 1.7 * np.abs(u))
    return (np.abs(u) <= 1.3) & (np.abs(v) <= 0.45)  # bar: a flat block across the gripper


def render_mpi3d(factors: np.ndarray, spec: Mpi3DFactors = Mpi3DFactors()) -> np.ndarray:
    """Images [N, 3, S, S] of factor rows [N, 7] (indices in the order of ``Mpi3DFactors.NAMES``)."""
    factors = np.asarray(factors, dtype=np.int64)
    if factors.ndim != 2 or factors.shape[1] != 7 or (factors < 0).any() or (factors >= spec.sizes).any():
        raise ValueError(f"expected factor rows [N, 7] below {spec.sizes}, got shape {factors.shape}")
    s = spec.size
    centres = (np.arange(s) + 0.5) / s
    px, py = np.meshgrid(centres, centres)  # y downwards
    steps = max(spec.angles - 1, 1)
    out = np.zeros((len(factors), 3, s, s), dtype=np.float32)
    for n, (colour, shape, size, height, background, horizontal, vertical) in enumerate(factors):
        fy = 1.0 - 0.15 * height  # a higher camera sees vertical extents shortened
        base = np.array([0.5, 0.94 - 0.08 * height])
        first = np.radians(40 + 100 * horizontal / steps)
        second = first + np.radians(-70 + 140 * vertical / steps)
        joint = base + 0.30 * np.array([np.cos(first), -np.sin(first) * fy])
        tip = joint + 0.22 * np.array([np.cos(second), -np.sin(second) * fy])
        image = np.broadcast_to(BACKGROUNDS[background][:, None, None], (3, s, s)).copy()
        pedestal = (np.abs(px - 0.5) <= 0.08) & (py >= base[1])
        image[:, pedestal] = 0.15
        arm = np.minimum(_segment_distance(px, py, base, joint), _segment_distance(px, py, joint, tip)) <= 0.03
        image[:, arm] = ARM_GREY
        radius = (0.07, 0.11)[size]
        mask = _shape_mask(MPI3D_SHAPES[shape], (px - tip[0]) / radius, (py - tip[1]) / (radius * fy))
        image[:, mask] = colour_rgb(int(colour), spec.colours)[:, None]
        out[n] = image
    return out


def sample_mpi3d(count: int, spec: Mpi3DFactors = Mpi3DFactors(), seed: int = 0) -> np.ndarray:
    """``count`` factor rows drawn uniformly and independently with ``seed``."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n, count) for n in spec.sizes], 1)
