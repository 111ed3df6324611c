"""MTCNN face detection (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks") in numpy around three ONNX nets.

A port of facenet-pytorch 2.6.0's ``detect_face`` (``MTCNN.detect``), stage by stage:

1. image pyramid: scales 12/min_face_size · factor^k while the short side stays ≥ 12 px; each
   level resized with torch's ``interpolate(mode="area")`` (adaptive average pooling), P-net on
   it, candidate 12×12 windows with face probability ≥ thresholds[0], NMS 0.5 within a scale,
   NMS 0.7 across scales, box regression, squared (``rerec``);
2. R-net on 24×24 "area" resamplings of the clipped windows, probability > thresholds[1],
   NMS 0.7, regression, squared;
3. O-net on 48×48 resamplings, probability > thresholds[2], landmarks, regression, then NMS 0.7
   on intersection over the smaller area.

Every resampling is an average over integer-aligned pixel windows of the input image, so it is
computed from one integral image (exact integer sums, then ``sum / kh / kw`` in float32 as
torch's kernel divides), which gives torch's pyramid and crops bit for bit. Box arithmetic runs
in float32 in the reference's operation order. The nets' inputs are float32 NCHW already
normalised as facenet-pytorch does, (pixel − 127.5) · 0.0078125 (see the cards' ``image``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from serving.errors import InvalidInput
from serving.vision.nms import nms_iou, nms_min
from serving.vision.types import FaceDetection

MODEL_NAMES = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")
_F32 = np.float32


def pyramid_scales(height: int, width: int, min_face_size: int = 20, factor: float = 0.709) -> list[float]:
    """The reference's scales, in Python floats (doubles) exactly as it computes them."""
    m = 12.0 / min_face_size
    min_side = min(height, width) * m
    scales = []
    scale = m
    while min_side >= 12:
        scales.append(scale)
        scale *= factor
        min_side *= factor
    return scales


def integral_image(image: np.ndarray) -> np.ndarray:
    """[H, W, C] uint8 → [H + 1, W + 1, C] integer window sums table, zero first row and column."""
    height, width, channels = image.shape
    # int32 holds the sum of up to 2^31 / 255 pixels (8.4 Mpx) and halves the memory traffic.
    dtype = np.int32 if height * width * 255 < 2**31 else np.int64
    table = np.zeros((height + 1, width + 1, channels), dtype)
    # Along rows first, then down the columns in place: the second pass adds whole rows (fast).
    np.cumsum(image, axis=1, dtype=dtype, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=0, out=table[1:, 1:])
    return table


def _windows(start: np.ndarray, length: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive pooling windows: [K, size] first and one-past-last input index per output index."""
    i = np.arange(size)
    first = (i[None, :] * length[:, None]) // size
    last = -((-(i[None, :] + 1) * length[:, None]) // size)  # ceil
    return start[:, None] + first, start[:, None] + last


def _average(sums: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Window sums [K, H', W', C] over [K, H'] rows and [K, W'] columns → means [K, C, H', W'] float32."""
    # Window sums of uint8 pixels are integers below 2^24 (windows under 256×256 px): exact in
    # float32, as torch's running sum is.
    # torch then divides by kh and by kw in turn (float32), which this reproduces to the bit.
    kh = rows.astype(_F32)[:, :, None, None]
    kw = cols.astype(_F32)[:, None, :, None]
    return (sums.astype(_F32) / kh / kw).transpose(0, 3, 1, 2)


def area_resize(
    table: np.ndarray, top: np.ndarray, left: np.ndarray, height: np.ndarray, width: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """torch ``interpolate(mode="area")`` of K image regions, from the image's integral ``table``.

    Region k is rows ``top[k] : top[k] + height[k]``, columns ``left[k] : left[k] + width[k]``
    (all [K] int); returns [K, C, size[0], size[1]] float32. Output pixel (i, j) is the mean over
    rows ⌊i·h/H'⌋ … ⌈(i+1)·h/H'⌉ − 1 and the same for columns (adaptive average pooling).
    """
    r0, r1 = _windows(np.asarray(top), np.asarray(height), size[0])
    c0, c1 = _windows(np.asarray(left), np.asarray(width), size[1])
    # Gather by flat pixel index (np.take of whole C-vectors is ~2.5x faster than 2-D fancy indexing).
    pixels = table.reshape(-1, table.shape[2])
    rows0, rows1 = (r0 * table.shape[1])[:, :, None], (r1 * table.shape[1])[:, :, None]
    cols0, cols1 = c0[:, None, :], c1[:, None, :]
    sums = (
        np.take(pixels, rows1 + cols1, axis=0)
        - np.take(pixels, rows0 + cols1, axis=0)
        - np.take(pixels, rows1 + cols0, axis=0)
        + np.take(pixels, rows0 + cols0, axis=0)
    )
    return _average(sums, r1 - r0, c1 - c0)


def area_resize_image(table: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`area_resize` of the whole image → [1, C, size[0], size[1]]; separable, for the pyramid."""
    r0, r1 = _windows(np.zeros(1, np.int64), np.array([table.shape[0] - 1]), size[0])
    c0, c1 = _windows(np.zeros(1, np.int64), np.array([table.shape[1] - 1]), size[1])
    strips = table[r1[0]] - table[r0[0]]  # [H', W + 1, C]: sums over each output row's window
    return _average((strips[:, c1[0]] - strips[:, c0[0]])[None], r1 - r0, c1 - c0)


def normalize(pixels: np.ndarray) -> np.ndarray:
    """facenet-pytorch's input scaling, in float32: (x − 127.5) · 0.0078125."""
    return (pixels - _F32(127.5)) * _F32(0.0078125)


def candidate_windows(regression: np.ndarray, probability: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-net output map → [N, 9] float32 rows (x1, y1, x2, y2, score, 4 regressions), row-major.

    ``regression`` [4, h, w], ``probability`` [h, w] (face class). A cell (y, x) stands for the
    12×12 window at (2x + 1, 2y + 1) … (2x + 12, 2y + 12) of the level, divided by ``scale``.
    """
    mask = probability >= _F32(threshold)
    ys, xs = np.nonzero(mask)
    cells = np.stack([xs, ys], axis=1).astype(_F32)
    q1 = np.floor((2 * cells + 1) / _F32(scale))
    q2 = np.floor((2 * cells + 12) / _F32(scale))
    return np.concatenate([q1, q2, probability[mask][:, None], regression[:, mask].T], axis=1).astype(_F32)


def square(boxes: np.ndarray) -> np.ndarray:
    """``rerec``: each box [N, ≥4] made square around its centre on its longer side (in place)."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * _F32(0.5) - side * _F32(0.5)
    boxes[:, 1] = boxes[:, 1] + h * _F32(0.5) - side * _F32(0.5)
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``bbreg``: shift corners by ``offsets`` [N, 4] times the +1-convention width/height (in place)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    shifted = np.stack(
        [
            boxes[:, 0] + offsets[:, 0] * w,
            boxes[:, 1] + offsets[:, 1] * h,
            boxes[:, 2] + offsets[:, 2] * w,
            boxes[:, 3] + offsets[:, 3] * h,
        ],
        axis=1,
    )
    boxes[:, :4] = shifted
    return boxes


def clip_windows(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """``pad``: truncated integer corners clipped to the image; (y, ey, x, ex), 1-based starts."""
    corners = np.trunc(boxes[:, :4]).astype(np.int32)
    x = np.maximum(corners[:, 0], 1)
    y = np.maximum(corners[:, 1], 1)
    ex = np.minimum(corners[:, 2], width)
    ey = np.minimum(corners[:, 3], height)
    return y, ey, x, ex


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle intra-op threads spin by default; on a small host that burns the gRPC threads' cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class MtcnnDetector:
    """Faces in one RGB image: boxes, 5 landmarks and probabilities, as facenet-pytorch's MTCNN."""

    def __init__(
        self,
        pnet: Path,
        rnet: Path,
        onet: Path,
        *,
        threads: int = 1,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        self.pnet, self.rnet, self.onet = (_session(p, threads) for p in (pnet, rnet, onet))
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self._input = {s: s.get_inputs()[0].name for s in (self.pnet, self.rnet, self.onet)}

    @classmethod
    def from_repository(cls, models_dir: Path, threads: int = 1) -> MtcnnDetector:
        """The newest versions of ``mtcnn-pnet``, ``mtcnn-rnet`` and ``mtcnn-onet``."""
        from serving.models.repository import ModelRepository

        repository = ModelRepository(models_dir)
        pnet, rnet, onet = (repository.get(name).model_path for name in MODEL_NAMES)
        return cls(pnet, rnet, onet, threads=threads)

    def _run(self, session: ort.InferenceSession, batch: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {self._input[session]: batch})

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces in ``image`` [H, W, 3] uint8 RGB, by descending probability ([] when none)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InvalidInput(f"the detector takes an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        scales = pyramid_scales(height, width, self.min_face_size, self.factor)
        if not scales:  # shorter side below min_face_size: no 12-px window fits any level
            return []
        table = integral_image(image)
        boxes = self._proposals(table, height, width, scales)
        if len(boxes):
            boxes = self._refine(table, boxes, height, width)
        if not len(boxes):
            return []
        boxes, points = self._output(table, boxes, height, width)
        order = np.argsort(-boxes[:, 4], kind="stable")
        return [
            FaceDetection(box=boxes[i, :4].copy(), landmarks=points[i].copy(), probability=float(boxes[i, 4]))
            for i in order
        ]

    def _proposals(self, table: np.ndarray, height: int, width: int, scales: list[float]) -> np.ndarray:
        """Stage 1: P-net over the pyramid → squared candidate boxes [N, 5] (x1, y1, x2, y2, score)."""
        picked = []
        for scale in scales:
            size = (int(height * scale + 1), int(width * scale + 1))
            level = area_resize_image(table, size)
            regression, probability = self._run(self.pnet, normalize(level))
            windows = candidate_windows(regression[0], probability[0, 1], scale, self.thresholds[0])
            picked.append(windows[nms_iou(windows[:, :4], windows[:, 4], 0.5)])
        windows = np.concatenate(picked)
        windows = windows[nms_iou(windows[:, :4], windows[:, 4], 0.7)]
        w = windows[:, 2] - windows[:, 0]
        h = windows[:, 3] - windows[:, 1]
        boxes = np.stack(
            [
                windows[:, 0] + windows[:, 5] * w,
                windows[:, 1] + windows[:, 6] * h,
                windows[:, 2] + windows[:, 7] * w,
                windows[:, 3] + windows[:, 8] * h,
                windows[:, 4],
            ],
            axis=1,
        )
        return square(boxes)

    def _crops(
        self, table: np.ndarray, boxes: np.ndarray, height: int, width: int, size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised [K, 3, size, size] resamplings of the boxes' clipped windows, and which boxes had one.

        The reference crops ``image[y − 1 : ey, x − 1 : ex]`` (no padding outside the image); a box
        whose window is empty (wholly outside) has no crop — the reference fails on it, we drop it.
        """
        y, ey, x, ex = clip_windows(boxes, width, height)
        valid = (ey > y - 1) & (ex > x - 1)
        y, ey, x, ex = y[valid], ey[valid], x[valid], ex[valid]
        crops = area_resize(table, y - 1, x - 1, ey - y + 1, ex - x + 1, (size, size))
        return normalize(crops), valid

    def _refine(self, table: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
        """Stage 2: R-net on 24×24 crops → kept, regressed, squared boxes [N, 5]."""
        crops, valid = self._crops(table, boxes, height, width, 24)
        boxes = boxes[valid]
        if not len(boxes):
            return boxes
        regression, probability = self._run(self.rnet, crops)
        passed = probability[:, 1] > _F32(self.thresholds[1])
        boxes = np.concatenate([boxes[passed, :4], probability[passed, 1:2]], axis=1)
        keep = nms_iou(boxes[:, :4], boxes[:, 4], 0.7)
        return square(regress(boxes[keep], regression[passed][keep]))

    def _output(self, table: np.ndarray, boxes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: O-net on 48×48 crops → final boxes [N, 5] and landmarks [N, 5, 2]."""
        crops, valid = self._crops(table, boxes, height, width, 48)
        boxes = boxes[valid]
        if not len(boxes):
            return boxes, np.zeros((0, 5, 2), _F32)
        regression, landmarks, probability = self._run(self.onet, crops)
        passed = probability[:, 1] > _F32(self.thresholds[2])
        boxes = np.concatenate([boxes[passed, :4], probability[passed, 1:2]], axis=1)
        landmarks = landmarks[passed]
        # Landmarks are relative to the box O-net saw (before its regression), +1 convention.
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = np.stack([w * landmarks[:, :5] + boxes[:, 0:1] - 1, h * landmarks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = regress(boxes, regression[passed])
        keep = nms_min(boxes[:, :4], boxes[:, 4], 0.7)
        return boxes[keep], points[keep].astype(_F32)
