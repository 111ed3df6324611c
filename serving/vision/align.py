"""Face chips with dlib's geometry: what ``dlib.get_face_chip(img, det, 150, 0.25)`` returns.

dlib's ResNet face descriptor was trained on chips cut this way, so the gateway reproduces it
exactly. The geometry and the cutting live in ``contracts/face_geometry.py`` (the training corpus
cuts its chips with the same function; its docstring gives dlib's steps) and are re-exported here
for the face pipeline.

``fallback_chip_from_mtcnn`` cuts the same kind of chip from MTCNN's 5 points when dlib's landmark
model is not available, fitting them to where the corresponding points of dlib's 68-point mean face
fall (eye centres, nose tip, mouth corners): the chip is close to, not identical with, dlib's.
"""

from __future__ import annotations

import numpy as np

from contracts.face_geometry import (  # noqa: F401  (re-exported: the pipeline's and its tests' names)
    DLIB_CHIP_PADDING,
    DLIB_CHIP_SIZE,
    ChipDetails,
    chip_details,
    chip_transform,
    cut_chip,
    extract_chip,
    face_chip,
    pyramid_down2,
    similarity_transform,
)
from contracts.face_geometry import DLIB_TEMPLATE_5 as DLIB_TEMPLATE_5_POINTS

CHIP_SIZE = DLIB_CHIP_SIZE
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
