"""Greedy non-maximum suppression in numpy, in the two forms facenet-pytorch's MTCNN uses.

Both compute in the boxes' dtype (float32 here) with the reference's operation order, so that
the same boxes and scores keep the same indices bit for bit (a box whose overlap sits exactly at
a threshold goes the same way as in the reference).
"""

from __future__ import annotations

import numpy as np


def nms_iou(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """torchvision's ``nms``: indices [K] int64 of the kept rows, by descending score.

    ``boxes`` [N, 4] (x1, y1, x2, y2), ``scores`` [N]. Candidates are visited in descending score
    order (stable sort, as torchvision's CPU kernel); area = (x2 − x1)·(y2 − y1); a box is
    suppressed when its IoU with a kept box is > ``threshold``.
    """
    if len(boxes) == 0:
        return np.empty(0, np.int64)
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    zero = boxes.dtype.type(0)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        order = rest[~(inter / (areas[i] + areas[rest] - inter) > threshold)]
    return np.asarray(keep, np.int64)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's ``nms_numpy(..., 'Min')`` (MTCNN's last stage): kept indices [K] int64.

    Overlap = intersection / the smaller of the two areas, areas with the +1 pixel convention
    ((x2 − x1 + 1)·(y2 − y1 + 1)); a box is suppressed when its overlap is > ``threshold``.
    Candidates are taken from the end of ``np.argsort(scores)`` (the reference's order, ties
    included).
    """
    if len(boxes) == 0:
        return np.empty(0, np.int64)
    x1, y1, x2, y2 = (boxes[:, k].copy() for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    keep = []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / np.minimum(area[i], area[rest]) <= threshold]
    return np.asarray(keep, np.int64)
