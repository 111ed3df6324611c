"""Video-like frames of real faces for the face service's tests, benchmark and examples: the two
real photos that ship with packages (skimage's astronaut, matplotlib's Grace Hopper), their faces
drifting and zooming over a noisy background, optionally with blurred (poor) frames. The face
boxes are the ones ``training.data.face_tracks`` uses (found once with dlib's frontal detector)."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

from training.data.face_tracks import PHOTO_BOXES as BOXES


@functools.lru_cache(maxsize=2)
def photo(name: str) -> np.ndarray:
    """RGB uint8 [H, W, 3]."""
    if name == "astronaut":
        import skimage.data

        return skimage.data.astronaut()
    import matplotlib.cbook

    with Image.open(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))) as img:
        return np.asarray(img.convert("RGB"))


def encode(image: np.ndarray, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def face_crop(name: str, margin: float = 1.8) -> Image.Image:
    x1, y1, x2, y2 = BOXES[name]
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, margin * max(x2 - x1, y2 - y1) / 2
    return Image.fromarray(photo(name)).crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))


def frames(name: str, count: int, seed: int, size: tuple[int, int] = (320, 240), blur_every: int = 0) -> list[bytes]:
    """``count`` JPEG frames of one face drifting and zooming over a noisy background; with
    ``blur_every`` = k, every k-th frame is heavily blurred (a poor frame the track should skip)."""
    from PIL import ImageFilter

    rng = np.random.default_rng(seed)
    width, height = size
    crop = face_crop(name)
    background = np.clip(rng.uniform(60, 190, 3) + rng.normal(0, 10, (height, width, 3)), 0, 255).astype(np.uint8)
    phase, out = rng.uniform(0, 2 * np.pi, 3), []
    for t in range(count):
        side = int(150 + 20 * np.sin(0.3 * t + phase[0]))
        face = crop.resize((side, side), Image.Resampling.BILINEAR)
        if blur_every and t % blur_every == blur_every - 1:
            face = face.filter(ImageFilter.GaussianBlur(6))
        x = int((width - side) / 2 + 40 * np.sin(0.2 * t + phase[1]))
        y = int((height - side) / 2 + 20 * np.sin(0.25 * t + phase[2]))
        scene = Image.fromarray(background.copy())
        scene.paste(face, (x, y))
        out.append(encode(np.asarray(scene)))
    return out


def no_face(seed: int = 0, size: tuple[int, int] = (200, 160)) -> bytes:
    rng = np.random.default_rng(seed)
    return encode(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
