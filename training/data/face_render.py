"""One frame of a generated face track, and the served chip of it (METHODS §5; issue 10).

A face model is trained on exactly the chips the gateway feeds it: the chip geometry (size,
padding, 5-point template) is the card's ``image.alignment`` (``contracts.face_geometry.
dlib_alignment(size)``, what ``export/trained_face.py`` declares) and the chip is cut by the one
function the gateway's face pipeline cuts with (``contracts.face_geometry.cut_chip``). So a frame
is made as a camera and the gateway would make it:

1. the source face (``SOURCE_SIZE`` px) sits at the centre of its track's *backdrop*: a noisy
   background of one random colour (the calibration scenes' statistics), ``BACKDROP``× wider
   (the chip's area is at most 1.2 source sides from the centre at any pose);
2. the camera: pose (shift, zoom, rotation; an affine warp, bicubic) into an uncut frame
   ``FRAME_SCALE``× the chip side, at the frame's render resolution → illumination → optical
   blur → sensor noise → up-sampling → JPEG, as before this change;
3. the gateway: the source's 5 landmarks (dlib's order; found once by the served landmark
   predictor, ``training.data.face_source_points``) moved by the same warp, plus a little
   per-frame jitter standing for the served predictor's own error, → ``cut_chip``.

``render_frame`` does 2 and 3 and returns both the uncut frame (a scene the served pipeline can
be run on) and the chip (what training reads).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from contracts.card_sections import Alignment
from contracts.face_geometry import chip_details_for, cut_chip
from training.data.face_source_points import SOURCE_POINTS

LFW_FACES = 100  # lfw_subset(): images 0..99 are faces, 100..199 are not
# (x1, y1, x2, y2) of the face in each packaged photo (dlib frontal detector, upsample 1).
PHOTO_BOXES = {"astronaut": (175, 76, 265, 166), "grace-hopper": (180, 139, 366, 325)}
PHOTO_MARGIN = 1.1  # the source crop is the box grown by this factor, roughly LFW's framing
SOURCE_SIZE = 112  # every source face is resampled to this size before rendering
LOW_BLUR, LOW_RESOLUTION, LOW_NOISE, LOW_JPEG = 3.0, 14, 0.05, 25  # "low" thresholds (module docstring)
# The uncut frame is FRAME_SCALE chip sides wide, with the source face (SOURCE_SIZE px) one chip
# side wide at zoom 1: the chip's corners lie within one source side of the face's centre for
# every source (dlib's chip with padding 0.25 is about as wide as an LFW crop), so at the largest
# zoom (1.21) and shift (0.08 per axis) they stay 1.32 chip sides from the centre, inside the
# 1.5 of the frame: no chip reads outside its frame (tests/training/data/test_face_tracks.py).
FRAME_SCALE = 3.0
BACKDROP = 4  # the backdrop is BACKDROP source sides wide: it covers every chip at every pose
BACKDROP_NOISE = 12.0  # grey levels, as export/face_calibration.py's scenes
# Per-frame landmark jitter (σ per coordinate, a fraction of the chip side), standing for the
# served predictor's error on frames like these (`scripts/face_source_points.py --jitter`): its
# points sit 0.0041 (high quality) and 0.0138 (low) RMS from the moved points. Independent
# jitter of 0.004 gives chips the served shift, scale and angle errors (RMS 0.0025 chip sides,
# 0.0097 log scale, 0.54°); the served errors on low-quality frames are correlated and
# heavy-tailed, and 0.018 matches their scale error (0.041) between their shift (0.013 / 0.011)
# and angle (1.8°) errors.
JITTER_HIGH, JITTER_LOW = 0.004, 0.018


# ------------------------------------------------------------------------------- sources


def _photo_face(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, PHOTO_MARGIN * max(x2 - x1, y2 - y1) / 2
    crop = Image.fromarray(image).crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    return np.asarray(crop.resize((SOURCE_SIZE, SOURCE_SIZE), Image.Resampling.BICUBIC))


@functools.lru_cache(maxsize=1)
def face_sources() -> tuple[tuple[str, np.ndarray], ...]:
    """(name, RGB uint8 [112, 112, 3]) of every available identity: the two colour photos first,
    then ``lfw-000`` … ``lfw-099`` (grey, replicated to RGB). Cached; treat as read-only."""
    import matplotlib.cbook
    import skimage.data

    with Image.open(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))) as img:
        hopper = np.asarray(img.convert("RGB"))
    out = [
        ("astronaut", _photo_face(skimage.data.astronaut(), PHOTO_BOXES["astronaut"])),
        ("grace-hopper", _photo_face(hopper, PHOTO_BOXES["grace-hopper"])),
    ]
    lfw = skimage.data.lfw_subset()[:LFW_FACES]  # float64 [100, 25, 25] in [0, 1]
    for i, face in enumerate(lfw):
        grey = Image.fromarray(np.round(face * 255).astype(np.uint8))
        grey = grey.resize((SOURCE_SIZE, SOURCE_SIZE), Image.Resampling.BICUBIC)
        out.append((f"lfw-{i:03d}", np.repeat(np.asarray(grey)[:, :, None], 3, axis=2)))
    return tuple(out)


def source_points(name: str) -> np.ndarray:
    """dlib's 5 landmarks [5, 2] float64 (x, y pixels of the ``SOURCE_SIZE`` source) of a source."""
    return np.array(SOURCE_POINTS[name], dtype=np.float64)


def backdrop(source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The source [S, S, 3] at the centre of a noisy one-colour background [B·S, B·S, 3] uint8."""
    s = source.shape[0]
    side = BACKDROP * s
    base = rng.uniform(40, 200, 3)
    out = np.clip(base + rng.normal(0.0, BACKDROP_NOISE, (side, side, 3)), 0, 255).astype(np.uint8)
    at = (side - s) // 2
    out[at : at + s, at : at + s] = source
    return out


# ------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class FrameParams:
    """How one frame was made: pose (shift in chip fractions, zoom, degrees) and degradations."""

    dx: float
    dy: float
    zoom: float
    angle: float
    blur: float
    resolution: int
    noise: float
    jpeg: int

    @property
    def low_quality(self) -> bool:
        return (
            self.blur >= LOW_BLUR
            or self.resolution <= LOW_RESOLUTION
            or self.noise >= LOW_NOISE
            or self.jpeg <= LOW_JPEG
        )


def track_params(rng: np.random.Generator, frames: int) -> tuple[list[FrameParams], dict[str, float]]:
    """Per-frame parameters of one track and its illumination (gain, gamma, cast_r/g/b)."""
    base = {
        "dx": rng.uniform(-0.04, 0.04),
        "dy": rng.uniform(-0.04, 0.04),
        "zoom": rng.uniform(0.9, 1.15),
        "angle": rng.uniform(-10, 10),
    }
    light = {
        "gain": rng.uniform(0.7, 1.3),
        "gamma": rng.uniform(0.8, 1.25),
        **{f"cast_{c}": rng.uniform(0.92, 1.08) for c in "rgb"},
    }
    amplitude = {"dx": 0.04, "dy": 0.03, "zoom": 0.06, "angle": 6.0}
    phase = {k: rng.uniform(0, 2 * np.pi, size=2) for k in amplitude}
    poor_share = rng.uniform(0.15, 0.65)
    t = np.arange(frames) / max(frames, 1)
    params = []
    for f in range(frames):
        # Two slow sinusoids per pose parameter: smooth motion over the track, never a jump.
        pose = {
            k: base[k]
            + amplitude[k] * 0.5 * (np.sin(2 * np.pi * t[f] + phase[k][0]) + np.sin(np.pi * t[f] + phase[k][1]))
            for k in amplitude
        }
        if rng.random() < poor_share:  # a poor frame: one to three hard degradations
            hard = set(rng.choice(4, size=int(rng.integers(1, 4)), replace=False).tolist())
        else:
            hard = set()
        params.append(
            FrameParams(
                dx=float(pose["dx"]),
                dy=float(pose["dy"]),
                zoom=float(pose["zoom"]),
                angle=float(pose["angle"]),
                blur=float(rng.uniform(3.0, 6.0) if 0 in hard else rng.uniform(0.0, 0.8)),
                resolution=int(rng.integers(8, 15) if 1 in hard else rng.integers(40, SOURCE_SIZE + 1)),
                noise=float(rng.uniform(0.05, 0.10) if 2 in hard else rng.uniform(0.0, 0.02)),
                jpeg=int(rng.integers(8, 26) if 3 in hard else rng.integers(60, 96)),
            )
        )
    return params, {k: float(v) for k, v in light.items()}


def _pose(p: FrameParams, res: int, frame_res: int, backdrop_side: int) -> np.ndarray:
    """PIL's affine [2, 3]: uncut-frame point (continuous coordinates: pixel i spans [i, i+1]) at
    render resolution → backdrop point. Rotates by ``angle`` and scales by ``zoom`` about the
    frame's centre (the source's ``SOURCE_SIZE`` px become ``res · zoom`` px), shifted by
    (dx, dy) · res."""
    theta, scale = np.deg2rad(p.angle), SOURCE_SIZE / (res * p.zoom)
    cos, sin = np.cos(theta) * scale, np.sin(theta) * scale
    c_out = frame_res / 2
    cx_in, cy_in = backdrop_side / 2 - p.dx * SOURCE_SIZE, backdrop_side / 2 - p.dy * SOURCE_SIZE
    return np.array([[cos, sin, cx_in - cos * c_out - sin * c_out], [-sin, cos, cy_in + sin * c_out - cos * c_out]])


def frame_points(points: np.ndarray, p: FrameParams, size: int, backdrop_side: int) -> np.ndarray:
    """Backdrop landmarks [5, 2] (pixel-index x, y) → where ``render_frame`` puts them in its uncut frame."""
    res = min(p.resolution, size)
    frame_res, frame = round(FRAME_SCALE * res), round(FRAME_SCALE * size)
    affine = _pose(p, res, frame_res, backdrop_side)
    inside = np.linalg.solve(affine[:, :2], (np.asarray(points, dtype=np.float64) + 0.5 - affine[:, 2]).T).T
    return inside * (frame / frame_res) - 0.5  # the up-sampling scales continuous coordinates


def render_frame(
    backdrop_image: np.ndarray,
    points: np.ndarray,
    p: FrameParams,
    light: dict[str, float],
    alignment: Alignment,
    rng: np.random.Generator,
    jitter: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame of a track: (chip uint8 [S, S, 3], uncut frame uint8 [F, F, 3], points [5, 2]).

    ``backdrop_image`` [B, B, 3] with the source face at its centre and its 5 landmarks ``points``
    [5, 2] (backdrop pixels); S = ``alignment.chip_size``, F = ``FRAME_SCALE`` · S. Order as in a
    camera pipeline: pose (affine warp, bicubic) at ``p.resolution`` → illumination → optical blur
    → sensor noise → up-sampling to F → JPEG; then the landmarks, moved with the pose and offset
    by ``jitter`` [5, 2] (frame pixels), cut the chip with ``cut_chip`` (the served cut). The
    returned points are the exact (unjittered) landmarks in the uncut frame.
    """
    size = alignment.chip_size
    res = min(p.resolution, size)
    frame_res, frame = round(FRAME_SCALE * res), round(FRAME_SCALE * size)
    affine = _pose(p, res, frame_res, backdrop_image.shape[0])
    # The corners of the most rotated, least zoomed frames reach past the backdrop (never a chip):
    # they get the backdrop's mean edge colour.
    fill = tuple(int(c) for c in np.round(backdrop_image[0].mean(axis=0)))
    img = Image.fromarray(backdrop_image).transform(
        (frame_res, frame_res),
        Image.Transform.AFFINE,
        tuple(affine.ravel()),
        resample=Image.Resampling.BICUBIC,
        fillcolor=fill,
    )
    x = np.asarray(img, dtype=np.float32) / 255.0
    cast = np.array([light["cast_r"], light["cast_g"], light["cast_b"]], dtype=np.float32)
    x = np.clip(light["gain"] * np.power(x, light["gamma"]) * cast, 0.0, 1.0)
    img = Image.fromarray(np.round(x * 255).astype(np.uint8))
    if p.blur > 0.05:  # σ in chip pixels, scaled to the render resolution
        img = img.filter(ImageFilter.GaussianBlur(p.blur * res / size))
    noise = rng.normal(0.0, p.noise, size=(frame_res, frame_res, 3)).astype(np.float32)
    x = np.asarray(img, dtype=np.float32) / 255.0 + noise
    img = Image.fromarray(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8))
    img = img.resize((frame, frame), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=p.jpeg)
    with Image.open(io.BytesIO(buf.getvalue())) as decoded:
        uncut = np.asarray(decoded.convert("RGB"))
    moved = frame_points(points, p, size, backdrop_image.shape[0])
    cut_at = moved if jitter is None else moved + jitter
    return cut_chip(uncut, cut_at, alignment), uncut, moved


def landmark_jitter(rng: np.random.Generator, low_quality: bool, size: int) -> np.ndarray:
    """[5, 2] frame-pixel offsets: independent Gaussians, σ = ``JITTER_LOW`` or ``JITTER_HIGH`` · size."""
    return rng.normal(0.0, (JITTER_LOW if low_quality else JITTER_HIGH) * size, size=(5, 2))


def chip_inside_frame(points: np.ndarray, alignment: Alignment, frame: int) -> bool:
    """Whether every pixel ``cut_chip`` samples for these points lies inside an F×F frame."""
    last = alignment.chip_size - 1
    corners = np.array([[0, 0, 1], [last, 0, 1], [0, last, 1], [last, last, 1]], dtype=np.float64)
    mapped = chip_details_for(points, alignment).affine() @ corners.T  # [2, 4] image (x, y)
    return bool((mapped >= 0).all() and (mapped <= frame - 2).all())  # bilinear reads x and x + 1
