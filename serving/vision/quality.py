"""Frame quality for face tracks: which frames of a video track are worth embedding (issue 12).

The score is a product of four factors in [0, 1] (a frame fails if any factor fails):

- **probability**: the detector's face probability;
- **size** ``s⁴ / (s⁴ + 32⁴)`` of the shorter box side s (px): 0.13 at 20 px, 0.5 at 32 px,
  0.975 at 80 px;
- **detail** ``D⁸ / (D⁸ + 0.2⁸)`` of the chip's *detail ratio* D (:func:`detail_ratio`): the grey
  power in the band that holds a face's features (periods of about 8-16 px on a 150-px chip) over
  the band below it, in the chip's least detailed of 8 directions. A ratio, so dim or
  low-contrast faces keep their value; per direction, so motion blur shows; it falls with blur and
  with small faces up-sampled into the chip;
- **frontal** ``cos² yaw``, the yaw estimated from MTCNN's 5 points: the nose tip stands about
  0.42 eye distances in front of the eyes (the 6-point head model head-pose estimators use), so at
  yaw θ it sits ``0.42 · tan θ`` eye distances off the eyes' midline, and
  ``frontal = 1 / (1 + (o / 0.42)²)``: 0.5 at 45°.

Calibrated on real faces (``bench/face_quality.py``; numbers in the README's *Faces*): the 8 faces
of the packaged photos (scikit-image's astronaut, matplotlib's Grace Hopper, the six people of
insightface's group photo), each through 40 degradations (``training/data/real_faces.py``) run
through the served pipeline; a variant is *useful* when its embedding still matches the clean
face's at the model card's threshold for FAR 1 %. On the variants without yaw or occlusion the
detail ratio predicts that label with AUC 0.85 where the Laplacian variance served before gave
0.78 (noise raised it, dim light lowered it); the whole score reaches 0.80 against 0.70. The
detail factor is set steeper than a logistic fit of the label (50 % at D = 0.16), so that a blur
the embedding does not survive is refused; size and pose are set, not fitted: the label still
holds at 20 px (a shrunken copy keeps the photo's pose and light; the margin over the nearest other
person has halved) and fails at a rendered 45° yaw, which is to be kept. The floor
(``face.min_quality``, 0.25) keeps every face of ≥ 80 px, sharp (D ≥ 0.24, the least of the real
photos) and within ±45° of yaw — at worst 0.9 · 0.975 · 0.83 · 0.5 ≈ 0.36 — and refuses a sharp
20-px face and a Gaussian blur of 5 % of the face width (≤ 0.11 measured). Occlusion is not seen.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from serving.vision.types import FaceDetection

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_REFERENCE_CHIP = 150  # the chip side the detail bands are given for (dlib's); scaled for others
_INNER = 0.13  # the chip's border left out of the detail ratio on each side (background, black)
_SECTORS = tuple(22.5 * i for i in range(8))  # directions of the detail ratio, degrees (±11.25° each)


@dataclass(frozen=True)
class QualityConfig:
    floor: float = 0.25  # a track's frames below are never embedded (face.min_quality)
    half_size_px: float = 32.0  # shorter box side giving size factor 0.5
    size_power: float = 4.0
    half_detail: float = 0.2  # detail ratio giving detail factor 0.5
    detail_power: float = 8.0
    nose_depth: float = 0.42  # nose tip in front of the eyes, in eye distances: offset at 45° of yaw

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"the quality floor must be within [0, 1], got {self.floor:g}")


@dataclass(frozen=True)
class FrameQuality:
    score: float
    probability: float
    size: float  # shorter box side, px
    sharpness: float  # the chip's detail ratio (:func:`detail_ratio`)
    frontal: float  # cos² of the estimated yaw: 1 frontal, 0.5 at 45°, 0 in profile

    def as_dict(self) -> dict[str, float]:
        return {
            "score": self.score,
            "probability": self.probability,
            "size": self.size,
            "sharpness": self.sharpness,
            "frontal": self.frontal,
        }


@functools.lru_cache(maxsize=4)
def _bands(n: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hann window [n, n], and per direction the power weights of the fine band (Gaussian σ 2 → 4
    px, times ``scale``) and the coarse band (σ 4 → 8 px) [8, n, n]."""
    window = np.outer(np.hanning(n), np.hanning(n))
    fy, fx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    k2 = fx**2 + fy**2

    def gauss(sigma: float) -> np.ndarray:
        return np.exp(-2 * np.pi**2 * (sigma * scale) ** 2 * k2)

    fine, coarse = (gauss(2) - gauss(4)) ** 2, (gauss(4) - gauss(8)) ** 2
    angle = np.degrees(np.arctan2(fy, fx)) % 180
    sectors = np.stack([np.abs((angle - c + 90) % 180 - 90) < 90 / len(_SECTORS) for c in _SECTORS])
    return window, fine * sectors, coarse * sectors


def detail_ratio(chip: np.ndarray) -> float:
    """The detail ratio of an RGB uint8 chip [S, S, 3]: in the least detailed of 8 directions, the
    grey power in the band of Gaussian σ 2-4 px over that of σ 4-8 px (σ for a 150-px chip; scaled
    with S), on the chip's inner 74 % with a Hann window. 0.24-0.50 on the real photos' faces,
    about 0.13 under a Gaussian blur of 5 % of the face width; a flat chip gives 0."""
    size = chip.shape[0]
    margin = int(round(_INNER * size))
    n = size - 2 * margin
    window, fine, coarse = _bands(n, size / _REFERENCE_CHIP)
    grey = chip[margin : margin + n, margin : margin + n].astype(np.float32) @ _GREY
    power = np.abs(np.fft.fft2((grey - grey.mean()) * window)) ** 2
    low = (coarse * power).sum(axis=(1, 2))
    high = (fine * power).sum(axis=(1, 2))
    return float(np.min(np.where(low > 0, high / np.maximum(low, 1e-12), 0.0)))


def nose_offset(landmarks: np.ndarray) -> float:
    """How far MTCNN's nose tip sits off the eyes' midline, in eye distances, along the eye line
    (points [5, 2]: image-left eye, image-right eye, nose, …); signed, 0 when frontal."""
    left, right, nose = (landmarks[i].astype(np.float64) for i in range(3))
    axis = right - left
    distance2 = float(axis @ axis)
    if distance2 < 1e-12:
        return float("inf")
    return float(np.dot(nose - (left + right) / 2, axis) / distance2)


def estimated_yaw(landmarks: np.ndarray, nose_depth: float = QualityConfig.nose_depth) -> float:
    """The face's yaw in degrees (unsigned) from MTCNN's 5 points: ``atan(|offset| / nose_depth)``."""
    return float(np.degrees(np.arctan(abs(nose_offset(landmarks)) / nose_depth)))


def frontal_factor(landmarks: np.ndarray, nose_depth: float = QualityConfig.nose_depth) -> float:
    """cos² of the estimated yaw: 1 frontal, 0.5 at 45°, 0.25 at 60°, 0 in profile."""
    offset = nose_offset(landmarks)
    return 0.0 if not np.isfinite(offset) else float(1.0 / (1.0 + (offset / nose_depth) ** 2))


def _saturating(value: float, half: float, power: float) -> float:
    """``v^k / (v^k + h^k)``: 0 at 0, 0.5 at ``half``, → 1."""
    if value <= 0:
        return 0.0
    return float(1.0 / (1.0 + (half / value) ** power))


def frame_quality(
    detection: FaceDetection | None, chip: np.ndarray, config: QualityConfig = QualityConfig()
) -> FrameQuality:
    """Quality of one aligned face. ``detection`` is None for a client-aligned crop (detail only)."""
    detail = detail_ratio(chip)
    detail_factor = _saturating(detail, config.half_detail, config.detail_power)
    if detection is None:
        return FrameQuality(detail_factor, 1.0, float(min(chip.shape[:2])), detail, 1.0)
    size = min(detection.width, detection.height)
    size_factor = _saturating(size, config.half_size_px, config.size_power)
    frontal = frontal_factor(detection.landmarks, config.nose_depth)
    score = detection.probability * size_factor * detail_factor * frontal
    return FrameQuality(float(score), float(detection.probability), float(size), detail, frontal)
