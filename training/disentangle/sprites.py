"""A procedural dSprites-like image group with known factors (METHODS §7, the first of its groups).

Factors (each a discrete index, so MIG can be computed on them): ``shape`` (square, ellipse,
triangle), ``colour`` (hues evenly spaced on the HSV circle at full saturation and value),
``scale``, ``rotation`` (over [0, π): the ellipse's symmetry), ``x`` and ``y`` (the centre,
inside a margin that keeps the largest shape in the frame). Images are RGB float32 [N, 3, S, S]
in [0, 1] on black, rendered by point-in-shape tests at each pixel centre (no anti-aliasing),
so a factor table always renders the same images.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

SHAPES = ("square", "ellipse", "triangle")


@dataclass(frozen=True)
class SpriteFactors:
    """How many values each factor takes; ``sizes`` in the order of ``NAMES``."""

    colours: int = 6
    scales: int = 4
    rotations: int = 8
    positions: int = 8
    size: int = 32

    NAMES = ("shape", "colour", "scale", "rotation", "x", "y")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (len(SHAPES), self.colours, self.scales, self.rotations, self.positions, self.positions)


def colour_rgb(index: int, colours: int) -> np.ndarray:
    """The RGB of hue ``index / colours`` at full saturation and value."""
    return np.array(colorsys.hsv_to_rgb(index / colours, 1.0, 1.0), dtype=np.float32)


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Points (u, v) of the object's own frame (unit half-size) that belong to ``shape``."""
    if shape == "square":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "ellipse":
        return (u / 1.0) ** 2 + (v / 0.55) ** 2 <= 1.0
    return (v >= -0.6) & (v <= 0.9 - 1.5 * np.abs(u))  # a triangle pointing up (v grows upwards)


def render(factors: np.ndarray, spec: SpriteFactors = SpriteFactors()) -> np.ndarray:
    """Images [N, 3, S, S] of factor rows [N, 6] (indices in the order of ``SpriteFactors.NAMES``)."""
    factors = np.asarray(factors, dtype=np.int64)
    if factors.ndim != 2 or factors.shape[1] != 6 or (factors < 0).any() or (factors >= spec.sizes).any():
        raise ValueError(f"expected factor rows [N, 6] below {spec.sizes}, got shape {factors.shape}")
    s = spec.size
    centres = (np.arange(s) + 0.5) / s  # pixel centres in [0, 1]
    px, py = np.meshgrid(centres, 1.0 - centres)  # y upwards, row 0 at the top
    max_half = 0.18
    out = np.zeros((len(factors), 3, s, s), dtype=np.float32)
    for n, (shape, colour, scale, rotation, x, y) in enumerate(factors):
        half = max_half * (0.5 + 0.5 * scale / max(spec.scales - 1, 1))
        cx = max_half + (1 - 2 * max_half) * x / max(spec.positions - 1, 1)
        cy = max_half + (1 - 2 * max_half) * y / max(spec.positions - 1, 1)
        angle = np.pi * rotation / spec.rotations
        dx, dy = px - cx, py - cy
        u = (np.cos(angle) * dx + np.sin(angle) * dy) / half  # rotate the pixel grid by −angle
        v = (-np.sin(angle) * dx + np.cos(angle) * dy) / half
        mask = _inside(SHAPES[shape], u, v)
        out[n] = mask[None] * colour_rgb(int(colour), spec.colours)[:, None, None]
    return out


def sample_factors(count: int, spec: SpriteFactors = SpriteFactors(), seed: int = 0) -> np.ndarray:
    """``count`` factor rows drawn uniformly and independently with ``seed``."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n, count) for n in spec.sizes], 1)
