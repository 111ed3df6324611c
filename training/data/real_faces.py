"""Real face photos that ship inside Python packages, and degraded variants of them (issue 12).

Sources (read from the installed packages, never downloaded at run time):

- ``astronaut``: scikit-image's ``data.astronaut()`` (Eileen Collins, NASA, public domain), one
  frontal face about 90 px wide;
- ``grace-hopper``: matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy, public domain), one
  frontal face about 180 px wide;
- the group photo ``insightface/data/images/t1.jpg`` of the ``insightface`` wheel (installed with
  ``--no-deps``, only for this file: its code is never imported): six people round a card table,
  faces 90-110 px wide, frontal to about 45° of yaw, looking down, eyes closed; the hands, glasses
  and chips round them are real non-face material.

``GROUP_HEADS`` are the six people's head regions in that photo, drawn by hand from the picture
(a 50-px grid over it), not from any detector: a detection whose centre falls in none of them is
not a face. ``PHOTO_HEADS`` are the same for the two single-face photos.

:func:`degrade` makes the variants the frame quality score is calibrated against
(``bench/face_quality.py``): down-scaling, Gaussian and motion blur, sensor noise, JPEG, low light,
occlusion (a real surgical-mask texture from the same wheel, a dark band over the eyes, a hand-sized
patch) and yaw. Yaw is rendered by :func:`render_yaw`: the face as a depth map (an ellipsoid head
with a nose ridge whose tip stands 0.42 eye distances in front of the eyes, the ratio of the
6-point head model ``nose (0, 0, 0)``, eye centres ``(±157, 170, −135)``, mouth corners
``(±150, −150, −125)`` that head-pose estimators use) turned about the vertical axis and projected
orthographically; hidden surface is resolved per row (the nearer sample wins), the background
only slides. It is not a photograph of a turned head (no ear, no new cheek), but it moves the
nose off the eyes' midline as a turned head does, which is what the pose factor reads.
"""

from __future__ import annotations

import functools
import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

GROUP_PHOTO = "insightface/data/images/t1.jpg"
GROUP_MASK = "insightface/data/images/mask_blue.jpg"
# (x1, y1, x2, y2) head regions in t1.jpg (1280×886), left to right, drawn by hand on a 50-px grid.
GROUP_HEADS: dict[str, tuple[int, int, int, int]] = {
    "t1-seated-left": (40, 240, 190, 410),  # fair hair, looking down at her cards
    "t1-standing-left": (250, 130, 400, 290),  # dark hair, turned to her right
    "t1-seated-centre": (440, 240, 600, 420),  # dark shirt, smiling, near frontal
    "t1-seated-right": (720, 310, 870, 490),  # red shirt, laughing, eyes narrowed
    "t1-standing-right": (880, 40, 1040, 220),  # grey shirt, turned to his left, looking down
    "t1-seated-far-right": (1110, 250, 1260, 420),  # fair hair, eyes closed
}
GROUP_PEOPLE = len(GROUP_HEADS)
PHOTO_HEADS: dict[str, tuple[int, int, int, int]] = {
    "astronaut": (150, 40, 290, 200),
    "grace-hopper": (150, 90, 390, 370),
}


class MissingPhoto(LookupError):
    """A package that ships the photo is not installed."""


def _package_file(package: str, relative: str) -> Path:
    """A data file of an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPhoto(f"the {package!r} package (installed with --no-deps, for its data only) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise MissingPhoto(f"{path} is missing from the installed {package!r} package")
    return path


def _read_rgb(path: Path | str | io.BytesIO) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@functools.lru_cache(maxsize=4)
def photo(name: str) -> np.ndarray:
    """RGB uint8 [H, W, 3] of ``astronaut``, ``grace-hopper`` or ``group`` (read-only, cached)."""
    if name == "astronaut":
        import skimage.data

        image = skimage.data.astronaut()
    elif name == "grace-hopper":
        import matplotlib.cbook

        image = _read_rgb(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    elif name == "group":
        image = _read_rgb(_package_file("insightface", GROUP_PHOTO.removeprefix("insightface/")))
    else:
        raise KeyError(f"no real photo {name!r}")
    image.flags.writeable = False
    return image


def photo_file(name: str) -> Path:
    """The packaged file of a photo (``group`` only: sent as it ships, JPEG bytes unchanged)."""
    if name != "group":
        raise KeyError(f"no packaged file for {name!r}")
    return _package_file("insightface", GROUP_PHOTO.removeprefix("insightface/"))


@functools.lru_cache(maxsize=1)
def mask_texture() -> np.ndarray:
    """The surgical-mask photo of the insightface wheel, RGB uint8."""
    return _read_rgb(_package_file("insightface", GROUP_MASK.removeprefix("insightface/")))


@dataclass(frozen=True)
class RealFace:
    """One real face: the photo it is in and its hand-drawn head region."""

    name: str
    photo: str
    head: tuple[int, int, int, int]


def real_faces(group: bool = True) -> list[RealFace]:
    """Every packaged real face (the group photo's six when ``group`` and its wheel is installed)."""
    faces = [RealFace(name, name, head) for name, head in PHOTO_HEADS.items()]
    if group:
        faces += [RealFace(name, "group", head) for name, head in GROUP_HEADS.items()]
    return faces


def head_of(box: np.ndarray, heads: dict[str, tuple[int, int, int, int]]) -> str | None:
    """The head region containing a detection box's centre, or None (not a face)."""
    cx, cy = (float(box[0]) + float(box[2])) / 2, (float(box[1]) + float(box[3])) / 2
    for name, (x1, y1, x2, y2) in heads.items():
        if x1 <= cx <= x2 and y1 <= cy <= y2:
            return name
    return None


def encode(image: np.ndarray, fmt: str = "JPEG", quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def track_frames(face: RealFace, count: int, seed: int, margin: float = 0.4) -> list[np.ndarray]:
    """``count`` video-like frames of one real face: its head region grown by ``margin`` region
    sides, zooming by ±8 % from frame to frame, with light sensor noise and JPEG (quality 85)."""
    image = photo(face.photo)
    x1, y1, x2, y2 = face.head
    crop, _ = crop_around(image, np.array([x1, y1, x2, y2], np.float64), margin)
    rng = np.random.default_rng(seed)
    out = []
    for t in range(count):
        side = int(crop.shape[0] * (1 + 0.08 * np.sin(0.5 * t + seed)))
        frame = np.asarray(_pil(crop).resize((side, side), Image.Resampling.BILINEAR))
        out.append(jpeg(add_noise(frame, 3, rng), 85))
    return out


# ------------------------------------------------------------------------------ variants


def crop_around(image: np.ndarray, box: np.ndarray, margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The square crop [S, S, 3] round a face box grown by ``margin`` box sides on each side
    (edge pixels repeated where it leaves the photo), and the box [4] in the crop's pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1)
    half = side * (0.5 + margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - half)), int(round(cy - half))
    size = int(round(2 * half))
    ys = np.clip(np.arange(top, top + size), 0, image.shape[0] - 1)
    xs = np.clip(np.arange(left, left + size), 0, image.shape[1] - 1)
    return np.ascontiguousarray(image[ys][:, xs]), np.array([x1 - left, y1 - top, x2 - left, y2 - top])


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image))


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """The image as a camera ``factor`` (< 1) times as far would see it: area-averaged down."""
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(_pil(image).resize(size, Image.Resampling.BOX))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(_pil(image).filter(ImageFilter.GaussianBlur(sigma)))


def motion_blur(image: np.ndarray, length: int, angle: float = 0.0) -> np.ndarray:
    """A linear motion blur of ``length`` px at ``angle`` degrees (an averaged line of shifts)."""
    acc = np.zeros(image.shape, np.float64)
    steps = max(1, int(length))
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, steps):
        dx, dy = t * np.cos(np.radians(angle)), t * np.sin(np.radians(angle))
        shifted = _pil(image).transform(
            (image.shape[1], image.shape[0]), Image.Transform.AFFINE, (1, 0, dx, 0, 1, dy), Image.Resampling.BILINEAR
        )
        acc += np.asarray(shifted, np.float64)
    return np.clip(acc / steps + 0.5, 0, 255).astype(np.uint8)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    return _read_rgb(io.BytesIO(encode(image, "JPEG", quality)))


def low_light(image: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Dimmed by ``gain`` with shot-like noise, as an under-exposed frame."""
    dim = image.astype(np.float64) * gain
    return np.clip(dim + rng.normal(0, 2.0 + 0.05 * dim), 0, 255).astype(np.uint8)


def occlude(image: np.ndarray, box: np.ndarray, kind: str) -> np.ndarray:
    """``mask`` (the packaged mask texture over nose and mouth), ``eyes`` (a dark band over the
    eyes) or ``patch`` (a skin-grey square over a third of the face, as a hand)."""
    out = image.copy()
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if kind == "mask":
        texture = mask_texture()
        region = (int(x1 + 0.05 * w), int(y1 + 0.5 * h), int(x2 - 0.05 * w), int(y2 + 0.05 * h))
        size = (max(1, region[2] - region[0]), max(1, region[3] - region[1]))
        patch = np.asarray(_pil(texture).resize(size, Image.Resampling.BILINEAR))
        top, left = max(region[1], 0), max(region[0], 0)
        patch = patch[top - region[1] :, left - region[0] :][: out.shape[0] - top, : out.shape[1] - left]
        out[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    elif kind == "eyes":
        out[int(y1 + 0.2 * h) : int(y1 + 0.48 * h), int(x1 - 0.02 * w) : int(x2 + 0.02 * w)] = 20
    elif kind == "patch":
        out[int(y1 + 0.45 * h) : int(y2), int(x1) : int(x1 + 0.55 * w)] = (190, 150, 130)
    else:
        raise ValueError(f"no occlusion {kind!r}")
    return out


# Head model, in eye distances (e): ellipsoid half-width 1.05 e, half-height 1.45 e, depth 1.0 e;
# the nose ridge rises from the eyes' level to its tip at 0.42 e in front of the eyes.
_HEAD_HALF_WIDTH, _HEAD_HALF_HEIGHT, _HEAD_DEPTH = 1.05, 1.45, 1.0
NOSE_DEPTH = 0.42


def face_depth(shape: tuple[int, int], eyes: np.ndarray, nose: np.ndarray) -> np.ndarray:
    """Depth [H, W] (pixels, towards the camera) of a frontal face with eye centres ``eyes`` [2, 2]
    and nose tip ``nose`` [2] in image pixels; 0 off the head."""
    height, width = shape
    e = float(np.hypot(*(eyes[1] - eyes[0])))
    centre_x = float(eyes[:, 0].mean())
    eye_y = float(eyes[:, 1].mean())
    centre_y = float(nose[1])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u = (xx - centre_x) / (_HEAD_HALF_WIDTH * e)
    v = (yy - centre_y) / (_HEAD_HALF_HEIGHT * e)
    head = _HEAD_DEPTH * e * np.sqrt(np.clip(1 - u * u - v * v, 0, None))
    eye_depth = _HEAD_DEPTH * e * np.sqrt(max(0.0, 1 - (0.5 / _HEAD_HALF_WIDTH) ** 2))
    head_at_nose = _HEAD_DEPTH * e
    tip = NOSE_DEPTH * e - (head_at_nose - eye_depth)  # what the ridge adds at the tip
    # The ridge: narrow across (σ 0.12 e), growing linearly from the eyes' level to the tip and
    # falling off fast below it (σ 0.1 e).
    along = np.clip((yy - eye_y) / max(centre_y - eye_y, 1.0), 0, None)
    rise = np.where(along <= 1, along, np.exp(-(((yy - centre_y) / (0.1 * e)) ** 2)))
    ridge = tip * rise * np.exp(-(((xx - float(nose[0])) / (0.12 * e)) ** 2) / 2)
    return head + ridge


def render_yaw(image: np.ndarray, eyes: np.ndarray, nose: np.ndarray, degrees: float) -> np.ndarray:
    """The face turned by ``degrees`` about the vertical axis (positive: the nose moves to the
    image's right), projected orthographically. ``eyes`` [2, 2] and ``nose`` [2] in pixels."""
    if degrees < 0:
        flipped = np.ascontiguousarray(image[:, ::-1])
        w = image.shape[1] - 1
        eyes_f = np.stack([w - eyes[:, 0], eyes[:, 1]], axis=1)[::-1]
        nose_f = np.array([w - nose[0], nose[1]])
        return np.ascontiguousarray(render_yaw(flipped, eyes_f, nose_f, -degrees)[:, ::-1])
    theta = np.radians(degrees)
    height, width = image.shape[:2]
    depth = face_depth((height, width), np.asarray(eyes, np.float64), np.asarray(nose, np.float64))
    centre_x = float(np.asarray(eyes)[:, 0].mean())
    xs = np.arange(width, dtype=np.float64)
    out = np.empty_like(image)
    for row in range(height):
        projected = centre_x + (xs - centre_x) * np.cos(theta) + depth[row] * np.sin(theta)
        # Turning right, a sample hidden behind a nearer one projects left of it: the visible
        # profile is the running maximum, and where it is flat the surface is hidden.
        visible = np.maximum.accumulate(projected)
        keep = np.concatenate([[True], np.diff(visible) > 1e-6])
        source_x = np.interp(xs, visible[keep], xs[keep])
        for c in range(image.shape[2]):
            out[row, :, c] = np.interp(source_x, xs, image[row, :, c]).round().astype(np.uint8)
    return out


Variant = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def _width(box: np.ndarray) -> float:
    return float(box[2] - box[0])


def variants(eyes_nose: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray] | None]) -> dict[str, Variant]:
    """The named degradations of a face crop (image, box in it, rng) → image. ``eyes_nose`` gives a
    crop's eye centres and nose tip (for yaw); a crop it finds none in is left frontal. Blur and
    motion lengths are fractions of the face's width (0.05 of a 100-px face is σ 5 px)."""

    def scaled(width: float) -> Variant:
        return lambda im, box, rng: downscale(im, min(1.0, width / _width(box)))

    def blurred(sigma: float) -> Variant:
        return lambda im, box, rng: gaussian_blur(im, sigma * _width(box))

    def moved(length: float) -> Variant:
        return lambda im, box, rng: motion_blur(im, max(2, round(length * _width(box))), rng.uniform(0, 180))

    def noisy(sigma: float) -> Variant:
        return lambda im, box, rng: add_noise(im, sigma, rng)

    def compressed(quality: int) -> Variant:
        return lambda im, box, rng: jpeg(im, quality)

    def dimmed(gain: float) -> Variant:
        return lambda im, box, rng: low_light(im, gain, rng)

    def occluded(kind: str) -> Variant:
        return lambda im, box, rng: occlude(im, box, kind)

    def yawed(degrees: float) -> Variant:
        def run(im: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            found = eyes_nose(im)
            return im if found is None else render_yaw(im, found[0], found[1], degrees)

        return run

    def soft_and_small(width: float) -> Variant:  # a small face from a soft camera
        return lambda im, box, rng: scaled(width)(blurred(0.03)(im, box, rng), box, rng)

    def turned_and_small(degrees: float) -> Variant:
        return lambda im, box, rng: scaled(48)(yawed(degrees)(im, box, rng), box, rng)

    out: dict[str, Variant] = {"clean": lambda im, box, rng: im}
    out |= {f"width-{w}": scaled(w) for w in (16, 20, 24, 28, 32, 40, 48, 56, 64, 80)}
    out |= {f"blur-{s:g}": blurred(s) for s in (0.05, 0.1, 0.15, 0.2)}
    out |= {f"motion-{n:g}": moved(n) for n in (0.1, 0.2, 0.3)}
    out |= {f"noise-{s}": noisy(s) for s in (10, 25, 45)}
    out |= {f"jpeg-{q}": compressed(q) for q in (5, 12)}
    out |= {f"dark-{g:g}": dimmed(g) for g in (0.25, 0.1)}
    out |= {f"occlude-{k}": occluded(k) for k in ("mask", "eyes", "patch")}
    out |= {f"yaw{d:+d}": yawed(d) for d in (-60, -45, -30, -15, 15, 30, 45, 60)}
    out |= {f"width-{w}+blur": soft_and_small(w) for w in (24, 32, 48)}
    out |= {f"yaw{d:+d}+width-48": turned_and_small(d) for d in (-30, 30)}
    return out
