"""A procedural 3DShapes-like image group (METHODS §7): a cheap 2.5D scene in numpy.

Factors (discrete indices, the order of ``Shapes3DFactors.NAMES``): ``floor_hue``, ``wall_hue``,
``object_hue`` (hues evenly spaced on the HSV circle), ``scale`` (the object's half-size),
``shape`` (cube, cylinder, sphere, capsule) and ``orientation`` (a yaw of −30° … +30°).
The scene: a wall above a horizon line and a floor below it (brighter towards the camera); the
yaw tilts the horizon, changes the widths of the cube's two visible faces, moves the shading
highlight of the round shapes and tilts the capsule, so orientation changes every shape's image.
Images are RGB float32 [N, 3, S, S] in [0, 1], rendered by per-pixel tests (deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.disentangle.sprites import colour_rgb

SHAPES3D = ("cube", "cylinder", "sphere", "capsule")


@dataclass(frozen=True)
class Shapes3DFactors:
    """How many values each factor takes; ``sizes`` in the order of ``NAMES``."""

    hues: int = 6
    scales: int = 4
    orientations: int = 5
    size: int = 32

    NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.hues, self.hues, self.hues, self.scales, len(SHAPES3D), self.orientations)


def _object(shape: str, px: np.ndarray, py: np.ndarray, half: float, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask, brightness) of the object standing at the bottom centre; y grows downwards."""
    cx, base = 0.5, 0.86
    if shape == "cube":
        turn = np.pi / 4 + yaw  # 15° … 75°: both vertical faces stay visible
        left, right = 2 * half * np.cos(turn), 2 * half * np.sin(turn)
        x0 = cx - (left + right) / 2
        top = base - 2 * half
        body = (py >= top) & (py <= base) & (px >= x0) & (px <= x0 + left + right)
        lid = (py >= top - 0.4 * half) & (py < top) & (px >= x0) & (px <= x0 + left + right)
        shade = np.where(px < x0 + left, 0.45 + 0.5 * np.cos(turn), 0.45 + 0.5 * np.sin(turn))
        return body | lid, np.where(lid, 1.0, shade)
    if shape == "sphere":
        u, w = (px - cx) / half, (py - (base - half)) / half
        inside = u**2 + w**2 <= 1
        normal_z = np.sqrt(np.clip(1 - u**2 - w**2, 0, 1))
        light = np.array([np.sin(yaw) + 0.3, -0.5, 0.8])
        light /= np.linalg.norm(light)
        return inside, 0.25 + 0.75 * np.clip(u * light[0] + w * light[1] + normal_z * light[2], 0, 1)
    if shape == "capsule":  # a pill tilted in the image plane by the yaw
        cy = base - half
        dx, dy = px - cx, py - cy
        along = np.cos(yaw) * dx + np.sin(yaw) * dy
        across = -np.sin(yaw) * dx + np.cos(yaw) * dy
        r, length = 0.55 * half, 0.9 * half
        inside = np.hypot(np.clip(np.abs(along) - length, 0, None), across) <= r
        return inside, 0.3 + 0.7 * np.clip(1 - np.abs(across / r - 0.4 * np.sin(yaw)), 0, 1)
    # cylinder: a body between two ellipses, lit from a side that follows the yaw
    rx, ry, top = half, 0.35 * half, base - 2 * half
    u = (px - cx) / rx
    body = (np.abs(u) <= 1) & (py >= top) & (py <= base)
    bottom = u**2 + ((py - base) / ry) ** 2 <= 1
    lid = u**2 + ((py - top) / ry) ** 2 <= 1
    side = 0.3 + 0.7 * np.clip(np.cos(np.arcsin(np.clip(u, -1, 1)) - 2 * yaw - 0.3), 0, 1)
    return body | bottom | lid, np.where(lid, 1.0, side)


def render_shapes3d(factors: np.ndarray, spec: Shapes3DFactors = Shapes3DFactors()) -> np.ndarray:
    """Images [N, 3, S, S] of factor rows [N, 6] (indices in the order of ``Shapes3DFactors.NAMES``)."""
    factors = np.asarray(factors, dtype=np.int64)
    if factors.ndim != 2 or factors.shape[1] != 6 or (factors < 0).any() or (factors >= spec.sizes).any():
        raise ValueError(f"expected factor rows [N, 6] below {spec.sizes}, got shape {factors.shape}")
    s = spec.size
    centres = (np.arange(s) + 0.5) / s
    px, py = np.meshgrid(centres, centres)  # y downwards: row 0 at the top
    out = np.zeros((len(factors), 3, s, s), dtype=np.float32)
    for n, (floor, wall, hue, scale, shape, orientation) in enumerate(factors):
        yaw = np.radians(60.0 * (orientation / max(spec.orientations - 1, 1) - 0.5))
        horizon = 0.55 + 0.4 * np.sin(yaw) * (px - 0.5)
        is_floor = py >= horizon
        depth = np.clip((py - horizon) / (1 - horizon), 0, 1)
        value = np.where(is_floor, 0.5 + 0.5 * depth, 0.8)
        base = np.where(is_floor[None], colour_rgb(int(floor), spec.hues)[:, None, None], 0)
        base = base + np.where(is_floor[None], 0, colour_rgb(int(wall), spec.hues)[:, None, None])
        image = base * value[None]
        half = 0.09 + 0.09 * scale / max(spec.scales - 1, 1)
        mask, shade = _object(SHAPES3D[shape], px, py, half, yaw)
        image = np.where(mask[None], colour_rgb(int(hue), spec.hues)[:, None, None] * shade[None], image)
        out[n] = image
    return out


def sample_shapes3d(count: int, spec: Shapes3DFactors = Shapes3DFactors(), seed: int = 0) -> np.ndarray:
    """``count`` factor rows drawn uniformly and independently with ``seed``."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n, count) for n in spec.sizes], 1)
