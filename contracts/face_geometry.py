"""The face-chip geometry a face model is trained and served on (the card's ``image.alignment``),
and the one function that cuts such a chip: the gateway's face pipeline (``serving/vision``) and
the training corpus (``training/data/face_tracks.py``) both call :func:`cut_chip`, so a trained
model sees in training exactly the chips serving feeds it.

dlib's 5-point template on the unit face square (``get_face_chip_details``, 5-part branch): outer
and inner corner of the image-right eye, outer and inner corner of the image-left eye, nose base.
A chip of side S puts template point t at ``(padding + t) / (1 + 2·padding) · S`` (dlib's default
padding 0.25). The chip is cut exactly as ``dlib.get_face_chip`` cuts it
(``dlib/image_transforms/interpolation.h``: ``get_face_chip_details``, ``chip_details``,
``extract_image_chips``; ``image_pyramid.h``: ``pyramid_down<2>``; held to dlib bit for bit by
``tests/serving/vision/test_align.py``):

1. least-squares similarity (Umeyama) from the template in chip pixels to the 5 landmarks in the
   image;
2. re-expressed as an angle and a rectangle ``centered_drect(tform(size/2, size/2), size·s − 1)``;
3. when the rectangle is big against the chip (its ``pyramid_down<2>`` image still has more than
   size² pixels), a crop of the image is first reduced by ``pyramid_down<2>`` levels (5×5
   [1 4 6 4 1]² filter, every other pixel, integer division by 256), with dlib's own
   level-to-level coordinate map ``p/2 − (1.25, 0.75)``;
4. chip pixels (0…size−1) map linearly onto the rotated rectangle's corners; each sample is
   bilinear in float64, **truncated** to uint8; a sample whose 2×2 neighbourhood leaves the image
   (or the crop) is black.

Points are (x, y) in pixel-index coordinates (pixel i's centre is at i), as dlib's.
numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contracts.card_sections import Alignment

DLIB_TEMPLATE_5: tuple[tuple[float, float], ...] = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)
DLIB_CHIP_PADDING = 0.25
DLIB_CHIP_SIZE = 150  # dlib's own chip side (its ResNet descriptor's input)


def dlib_alignment(chip_size: int, padding: float = DLIB_CHIP_PADDING) -> Alignment:
    """The ``image.alignment`` section for chips cut from dlib's 5 landmarks."""
    return Alignment(landmarks="dlib-5", template=list(DLIB_TEMPLATE_5), chip_size=chip_size, padding=padding)


def cut_chip(image: np.ndarray, points5: np.ndarray, alignment: Alignment) -> np.ndarray:
    """The chip [S, S, 3] uint8 a card's ``alignment`` defines, cut from an RGB uint8 image
    [H, W, 3] whose face has the 5 landmarks ``points5`` [5, 2] (x, y pixels, the template's order)."""
    return face_chip(image, points5, alignment.chip_size, alignment.padding, alignment.template)


def chip_details_for(points5: np.ndarray, alignment: Alignment) -> ChipDetails:
    """Where :func:`cut_chip` samples: the chip's rectangle and angle in the image."""
    return chip_details(points5, alignment.template, alignment.chip_size, alignment.padding)


@dataclass(frozen=True)
class ChipDetails:
    """dlib's ``chip_details``: ``rect`` [4] (left, top, right, bottom) float64, inclusive pixel
    coordinates of the unrotated chip area; ``angle`` (radians) it is rotated by about its centre;
    the chip is ``size`` × ``size``."""

    rect: np.ndarray
    angle: float
    size: int

    def affine(self) -> np.ndarray:
        """[2, 3]: chip pixel (x, y, 1) → image (x, y), the map sampled without pyramid levels."""
        return _affine_to_rect(np.asarray(self.rect, dtype=np.float64), self.angle, self.size)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ m @ src + t`` ([P, 2] each): m [2, 2] = c·R, t [2] (float64).

    dlib's ``find_similarity_transform`` (Umeyama 1991, eqs. 34–43); for 2-D points the optimal
    proper similarity has this closed form, equal to Umeyama's SVD solution up to float64 rounding.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mean_src, mean_dst = src.mean(0), dst.mean(0)
    s, d = src - mean_src, dst - mean_dst
    norm = float((s * s).sum())
    if norm == 0.0:
        return np.eye(2), mean_dst - mean_src
    a = float((s * d).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    m = np.array([[a, -b], [b, a]])
    return m, mean_dst - m @ mean_src


def chip_details(
    image_points: np.ndarray,
    unit_template: np.ndarray | Sequence[Sequence[float]],
    size: int = DLIB_CHIP_SIZE,
    padding: float = DLIB_CHIP_PADDING,
) -> ChipDetails:
    """dlib's ``chip_details(chip_points, img_points, chip_dims(size, size))`` for a template given
    on the unit face square ([P, 2]); ``image_points`` [P, 2] in the same order."""
    chip_points = (padding + np.asarray(unit_template, dtype=np.float64)) / (2 * padding + 1) * size
    m, t = similarity_transform(chip_points, np.asarray(image_points, dtype=np.float64))
    p = m[:, 0]  # tform.get_m() * (1, 0)
    angle = float(np.arctan2(p[1], p[0]))
    scale = float(np.hypot(p[0], p[1]))
    center = m @ np.array([size / 2.0, size / 2.0]) + t
    half = (size * scale - 1) / 2  # centered_drect shrinks width and height by one pixel
    return ChipDetails(np.array([center[0] - half, center[1] - half, center[0] + half, center[1] + half]), angle, size)


def chip_transform(points5: np.ndarray, size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING) -> np.ndarray:
    """The 2×3 affine [2, 3] mapping chip pixel (x, y, 1) to image (x, y) for dlib's 5 landmarks.

    This is the map dlib samples with when it needs no pyramid level (faces up to about twice the
    chip); with pyramid levels dlib samples a filtered image through its slightly shifted
    level-to-level map, so the chip's content sits within a pixel of this map.
    """
    return chip_details(points5, DLIB_TEMPLATE_5, size, padding).affine()


# --------------------------------------------------------------------------- dlib's sampling


def _area(rect: np.ndarray) -> float:
    left, top, right, bottom = rect
    if top > bottom or left > right:
        return 0.0
    return float((right - left + 1) * (bottom - top + 1))  # drectangle's width is r − l + 1


def _rect_down(rect: np.ndarray) -> np.ndarray:
    """``pyramid_down<2>::rect_down``: each corner p ↦ p/2 − (1.25, 0.75)."""
    return rect / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])


def _rotate(center: np.ndarray, points: np.ndarray, angle: float) -> np.ndarray:
    """``rotate_point(center, p, angle)`` for points [N, 2]."""
    c, s = np.cos(angle), np.sin(angle)
    d = points - center
    return np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], axis=1) + center


def _corners(rect: np.ndarray) -> np.ndarray:
    """tl, tr, bl, br corners [4, 2]."""
    left, top, right, bottom = rect
    return np.array([[left, top], [right, top], [left, bottom], [right, bottom]])


def _affine_to_rect(rect: np.ndarray, angle: float, size: int) -> np.ndarray:
    """The affine that takes chip corners (0,0), (size−1,0), (0,size−1) to the rotated rect's."""
    center = np.array([(rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0])
    tl, tr, bl, _ = _rotate(center, _corners(rect), angle)
    return np.stack([(tr - tl) / (size - 1), (bl - tl) / (size - 1), tl], axis=1)


def _round_rect(rect: np.ndarray) -> np.ndarray:
    """drectangle → rectangle conversion: each side rounded half up (``floor(x + 0.5)``)."""
    return np.floor(rect + 0.5).astype(np.int64)


def pyramid_down2(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>`` of an RGB uint8 image [H, W, 3] → [(H−3)//2, (W−3)//2, 3].

    Separable [1 4 6 4 1] filter on every other column, then every other row starting at row 2,
    sum divided by 256 with truncation (integer arithmetic throughout, as dlib's ``rgbptype``).
    Images of 8 pixels or less on a side give an empty image, as in dlib.
    """
    height, width = image.shape[:2]
    if height <= 8 or width <= 8:
        return np.zeros((0, 0) + image.shape[2:], np.uint8)
    # uint16 like dlib's rgbptype: the largest sum, 16·16·255 = 65280, still fits. Output pixel j
    # takes input pixels 2j … 2j+4: even taps (1, 6, 1) from the even columns, (4, 4) from the odd.
    src = image.astype(np.uint16)
    cols, rows = (width - 3) // 2, (height - 3) // 2
    even, odd = src[:, 0 : 2 * cols + 3 : 2], src[:, 1 : 2 * cols + 2 : 2]
    temp = even[:, :-2] + even[:, 2:] + even[:, 1:-1] * np.uint16(6) + ((odd[:, :-1] + odd[:, 1:]) << 2)
    even, odd = temp[0 : 2 * rows + 3 : 2], temp[1 : 2 * rows + 2 : 2]
    down = even[:-2] + even[2:] + even[1:-1] * np.uint16(6) + ((odd[:-1] + odd[1:]) << 2)
    return (down >> 8).astype(np.uint8)


def _bilinear(source: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib's ``interpolate_bilinear`` on an RGB image at float64 points (x, y) [N] → [N, 3] uint8.

    A point whose 2×2 neighbourhood is not entirely inside ``source`` gives black (dlib's
    ``black_background``); values are truncated towards zero after clamping to [0, 255].
    """
    height, width = source.shape[:2]
    left = np.floor(x)
    top = np.floor(y)
    valid = (left >= 0) & (top >= 0) & (left + 1 < width) & (top + 1 < height)
    base = np.where(valid, top * width + left, 0).astype(np.intp)
    lr = (x - left)[:, None]
    tb = (y - top)[:, None]
    # Gather the four neighbours from the uint8 pixels (converting only those to float64); invalid
    # points read pixel 0 and are blacked out below.
    flat = source.reshape(-1, source.shape[2])
    neighbours = flat[np.stack([base, base + 1, base + width, base + width + 1]) * valid].astype(np.float64)
    tl, tr, bl, br = neighbours
    value = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br)
    out = np.clip(value, 0, 255).astype(np.uint8)  # assign_pixel: clamp, then static_cast truncates
    out[~valid] = 0
    return out


def extract_chip(image: np.ndarray, details: ChipDetails) -> np.ndarray:
    """dlib's ``extract_image_chip(img, details, chip)`` for one RGB chip → [size, size, 3] uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    size = details.size
    rect, angle = np.asarray(details.rect, dtype=np.float64), details.angle
    height, width = image.shape[:2]
    if angle == 0 and size == rect[3] - rect[1] + 1 and size == rect[2] - rect[0] + 1:
        # dlib's fast path: an axis-aligned chip at scale 1 is a plain copy, zero outside the image.
        left, top, _, _ = _round_rect(rect)
        chip = np.zeros((size, size, 3), np.uint8)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + size, height), min(left + size, width)
        if y1 > y0 and x1 > x0:
            chip[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
        return chip

    # How many pyramid levels, and the crop (grown by the border the filters need) they start from.
    depth, grow = 0, 2.0
    down = _rect_down(rect)
    while _area(down) > size * size:
        down = _rect_down(down)
        depth += 1
        grow = grow * 2 + 2
    center = np.array([(rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0])
    rotated = _rotate(center, _corners(rect), angle)
    grown = np.concatenate([rotated.min(0) - grow, rotated.max(0) + grow])
    clipped = np.array(
        [max(grown[0], 0.0), max(grown[1], 0.0), min(grown[2], width - 1.0), min(grown[3], height - 1.0)]
    )
    box = _round_rect(clipped)
    if box[0] > box[2] or box[1] > box[3]:
        return np.zeros((size, size, 3), np.uint8)  # the chip lies entirely outside the image
    source = image[max(box[1], 0) : box[3] + 1, max(box[0], 0) : box[2] + 1]
    for _ in range(depth):
        source = pyramid_down2(source)

    local = rect - np.array([box[0], box[1], box[0], box[1]], dtype=np.float64)
    while _area(_rect_down(local)) > size * size:
        local = _rect_down(local)
    affine = _affine_to_rect(local, angle, size)
    grid_cols, grid_rows = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    cols, rows = grid_cols.ravel(), grid_rows.ravel()
    # point_transform_affine: m·p + b, in that order of operations.
    x = affine[0, 0] * cols + affine[0, 1] * rows + affine[0, 2]
    y = affine[1, 0] * cols + affine[1, 1] * rows + affine[1, 2]
    if source.size == 0:
        return np.zeros((size, size, 3), np.uint8)
    return _bilinear(source, x, y).reshape(size, size, 3)


def face_chip(
    image: np.ndarray,
    points5: np.ndarray,
    size: int = DLIB_CHIP_SIZE,
    padding: float = DLIB_CHIP_PADDING,
    template: np.ndarray | Sequence[Sequence[float]] = DLIB_TEMPLATE_5,
) -> np.ndarray:
    """``dlib.get_face_chip(image, det, size, padding)`` from dlib's 5 landmarks [5, 2] (x, y).

    ``image``: RGB uint8 [H, W, 3]; ``template`` [5, 2]: the points' places on the unit face
    square (a card's ``image.alignment.template``). Returns the chip [size, size, 3] uint8 (RGB).
    """
    return extract_chip(image, chip_details(points5, template, size, padding))
