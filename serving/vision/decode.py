"""Turn request image bytes into an RGB uint8 array [H, W, 3] (the face pipeline's input).

Two forms, as the ``Image`` oneof: encoded bytes (JPEG, PNG, BMP, WebP, …: what Pillow reads) or
raw pixels with an explicit width, height and pixel format. Everything else is an InvalidInput
with a message that says what was wrong; an image above the pixel limit is refused *before* it
is decoded (Pillow reads the size from the header), so a small "decompression bomb" never
allocates its declared size.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from serving.errors import InvalidInput, Overloaded

ACCEPTED_ENCODED = "JPEG, PNG, BMP, WebP, TIFF or another format Pillow reads"
RAW_FORMATS = {"rgb8": 3, "bgr8": 3, "gray8": 1}


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 40_000_000  # 40 MP: larger frames are refused (RESOURCE_EXHAUSTED)
    min_side: int = 12  # MTCNN's smallest window; below it no face can be found


def decode_encoded(data: bytes, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Encoded bytes → RGB uint8 [H, W, 3], EXIF orientation applied."""
    if not data:
        raise InvalidInput(f"the image is empty; send {ACCEPTED_ENCODED}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            _check_size(image.width, image.height, limits)
            image = ImageOps.exif_transpose(image)
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (Overloaded, InvalidInput):
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise Overloaded(f"the image is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidInput(f"cannot decode the image ({exc}); send {ACCEPTED_ENCODED}") from exc
    return np.ascontiguousarray(rgb)


def decode_raw(
    data: bytes, width: int, height: int, pixel_format: str, limits: ImageLimits = ImageLimits()
) -> np.ndarray:
    """Raw row-major pixels → RGB uint8 [H, W, 3]; ``pixel_format`` in ``RAW_FORMATS``."""
    channels = RAW_FORMATS.get(pixel_format)
    if channels is None:
        raise InvalidInput(f"raw image format must be one of {', '.join(f.upper() for f in RAW_FORMATS)}")
    if width <= 0 or height <= 0:
        raise InvalidInput(f"raw image needs a positive width and height, got {width}×{height}")
    _check_size(width, height, limits)
    expected = width * height * channels
    if len(data) != expected:
        raise InvalidInput(
            f"raw {pixel_format.upper()} image of {width}×{height} needs {expected} bytes, got {len(data)}"
        )
    pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels)
    if pixel_format == "gray8":
        pixels = np.repeat(pixels, 3, axis=2)
    elif pixel_format == "bgr8":
        pixels = pixels[:, :, ::-1]
    return np.ascontiguousarray(pixels)


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels:
        raise Overloaded(
            f"the image is {width}×{height} = {width * height / 1e6:.1f} MP; "
            f"the limit is {limits.max_pixels / 1e6:.1f} MP"
        )
    if min(width, height) < limits.min_side:
        raise InvalidInput(f"the image is {width}×{height}; both sides must be at least {limits.min_side} px")
