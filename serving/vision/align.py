"""Face chips with dlib's geometry, in numpy: what ``dlib.get_face_chip(img, det, 150, 0.25)`` returns.

dlib's ResNet face descriptor was trained on chips cut this way, so the gateway reproduces it
exactly (``dlib/image_transforms/interpolation.h``: ``get_face_chip_details``, ``chip_details``,
``extract_image_chips``; ``image_pyramid.h``: ``pyramid_down<2>``):

1. least-squares similarity (Umeyama) from a fixed 5-point template in chip pixels,
   ``(padding + t) / (1 + 2·padding) · size``, to dlib's 5 landmarks in the image;
2. re-expressed as an angle and a rectangle ``centered_drect(tform(size/2, size/2), size·s − 1)``;
3. when the rectangle is big against the chip (its ``pyramid_down<2>`` image still has more than
   size² pixels), a crop of the image is first reduced by ``pyramid_down<2>`` levels (5×5
   [1 4 6 4 1]² filter, every other pixel, integer division by 256), with dlib's own
   level-to-level coordinate map ``p/2 − (1.25, 0.75)``;
4. chip pixels (0…size−1) map linearly onto the rotated rectangle's corners; each sample is
   bilinear in float64, **truncated** to uint8; a sample whose 2×2 neighbourhood leaves the image
   (or the crop) is black.

``fallback_chip_from_mtcnn`` cuts the same kind of chip from MTCNN's 5 points when dlib's landmark
model is not available, fitting them to where the corresponding points of dlib's 68-point mean face
fall (eye centres, nose tip, mouth corners): the chip is close to, not identical with, dlib's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts.face_geometry import DLIB_CHIP_PADDING
from contracts.face_geometry import DLIB_TEMPLATE_5 as DLIB_TEMPLATE_5_POINTS

CHIP_SIZE = 150
CHIP_PADDING = DLIB_CHIP_PADDING
DLIB_TEMPLATE_5 = np.array(DLIB_TEMPLATE_5_POINTS)  # [5, 2]; the card's image.alignment.template

# dlib's 68-point mean face (get_face_chip_details, points 17…67 on the same unit square), from
# which MTCNN's points are placed: eye centres = mean of points 36–41 (image-left eye) and 42–47,
# nose tip = 30, mouth corners = 48 and 54.
_MEAN_FACE_X = np.array(
    [
        0.000213256,
        0.0752622,
        0.18113,
        0.29077,
        0.393397,
        0.586856,
        0.689483,
        0.799124,
        0.904991,
        0.98004,
        0.490127,
        0.490127,
        0.490127,
        0.490127,
        0.36688,
        0.426036,
        0.490127,
        0.554217,
        0.613373,
        0.121737,
        0.187122,
        0.265825,
        0.334606,
        0.260918,
        0.182743,
        0.645647,
        0.714428,
        0.793132,
        0.858516,
        0.79751,
        0.719335,
        0.254149,
        0.340985,
        0.428858,
        0.490127,
        0.551395,
        0.639268,
        0.726104,
        0.642159,
        0.556721,
        0.490127,
        0.423532,
        0.338094,
        0.290379,
        0.428096,
        0.490127,
        0.552157,
        0.689874,
        0.553364,
        0.490127,
        0.42689,
    ]
)
_MEAN_FACE_Y = np.array(
    [
        0.106454,
        0.038915,
        0.0187482,
        0.0344891,
        0.0773906,
        0.0773906,
        0.0344891,
        0.0187482,
        0.038915,
        0.106454,
        0.203352,
        0.307009,
        0.409805,
        0.515625,
        0.587326,
        0.609345,
        0.628106,
        0.609345,
        0.587326,
        0.216423,
        0.178758,
        0.179852,
        0.231733,
        0.245099,
        0.244077,
        0.231733,
        0.179852,
        0.178758,
        0.216423,
        0.244077,
        0.245099,
        0.780233,
        0.745405,
        0.727388,
        0.742578,
        0.727388,
        0.745405,
        0.780233,
        0.864805,
        0.902192,
        0.909281,
        0.902192,
        0.864805,
        0.784792,
        0.778746,
        0.785343,
        0.778746,
        0.784792,
        0.824182,
        0.831803,
        0.824182,
    ]
)


def _mean_face(indices: range | list[int]) -> np.ndarray:
    i = np.asarray(list(indices)) - 17
    return np.array([_MEAN_FACE_X[i].mean(), _MEAN_FACE_Y[i].mean()])


# MTCNN's order: image-left eye centre, image-right eye centre, nose tip, mouth-left, mouth-right.
MTCNN_TEMPLATE_5 = np.stack(
    [_mean_face(range(36, 42)), _mean_face(range(42, 48)), _mean_face([30]), _mean_face([48]), _mean_face([54])]
)


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
    image_points: np.ndarray, unit_template: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
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


def chip_transform(points5: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
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
    size: int = CHIP_SIZE,
    padding: float = CHIP_PADDING,
    template: np.ndarray = DLIB_TEMPLATE_5,
) -> np.ndarray:
    """``dlib.get_face_chip(image, det, size, padding)`` from dlib's 5 landmarks [5, 2] (x, y).

    ``image``: RGB uint8 [H, W, 3]; ``template`` [5, 2]: the points' places on the unit face
    square (a card's ``image.alignment.template``). Returns the chip [size, size, 3] uint8 (RGB).
    """
    return extract_chip(image, chip_details(points5, template, size, padding))


def fallback_chip_from_mtcnn(
    image: np.ndarray, mtcnn_landmarks: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> np.ndarray:
    """A chip from MTCNN's own 5 points [5, 2] (eye centres, nose tip, mouth corners), fitted by
    similarity to dlib's mean face; same sampling as :func:`face_chip`. Less faithful to dlib's
    alignment (notes: descriptor L2 0.12–0.17 from dlib's own chips), hence only a fallback."""
    return extract_chip(image, chip_details(mtcnn_landmarks, MTCNN_TEMPLATE_5, size, padding))


# --------------------------------------------------------------------------- boxes

# MTCNN's box reaches from the brow to the chin; dlib's HOG detector, which the 5-point model was
# trained with, returns a tighter square a little lower. (notes §1c: tuned on one face.)
SQUARE_SIDE = 0.87
SQUARE_SHIFT_DOWN = 0.05


def square_box_from_mtcnn(box: np.ndarray) -> np.ndarray:
    """An MTCNN box [4] (x1, y1, x2, y2) → a dlib-HOG-like square box [4] float32 with integer corners.

    Side = ``SQUARE_SIDE`` · mean(width, height), centre moved down by ``SQUARE_SHIFT_DOWN`` · side;
    corners rounded to whole pixels because dlib's rectangles (and so its landmark model) are integer.
    """
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64).reshape(4)
    side = SQUARE_SIDE * ((x2 - x1) + (y2 - y1)) / 2
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2 + SQUARE_SHIFT_DOWN * side
    half = side / 2
    return np.floor(np.array([cx - half, cy - half, cx + half, cy + half]) + 0.5).astype(np.float32)
