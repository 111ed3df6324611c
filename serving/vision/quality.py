"""Frame quality for face tracks: which frames of a video track are worth embedding.

Four factors, each in [0, 1], multiplied into one score (a frame fails if any factor fails):
detector probability; face size (shorter box side, saturating at ``full_size_px``); sharpness
(variance of the Laplacian of the aligned grey chip — blur and heavy JPEG flatten it — mapped by
``s / (s + half_sharpness)``); and a pose proxy from MTCNN's landmarks (how far the nose sits
from the eyes' midline, relative to the eye distance, in the eye-line frame: 0 when frontal,
about 0.5 in profile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.vision.types import FaceDetection

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class QualityConfig:
    full_size_px: float = 80.0  # faces this size or larger get size factor 1
    half_sharpness: float = 60.0  # Laplacian variance giving sharpness factor 0.5
    profile_offset: float = 0.5  # nose offset (in eye distances) at which the pose factor reaches 0


@dataclass(frozen=True)
class FrameQuality:
    score: float
    probability: float
    size: float  # shorter box side, px
    sharpness: float  # Laplacian variance of the grey chip
    frontal: float  # 1 frontal … 0 profile

    def as_dict(self) -> dict[str, float]:
        return {
            "score": self.score,
            "probability": self.probability,
            "size": self.size,
            "sharpness": self.sharpness,
            "frontal": self.frontal,
        }


def laplacian_variance(chip: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of an RGB uint8 chip [S, S, 3] in grey levels."""
    grey = chip.astype(np.float32) @ _GREY
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4.0 * grey[1:-1, 1:-1]
    return float(lap.var())


def frontal_factor(landmarks: np.ndarray, profile_offset: float = 0.5) -> float:
    """Pose proxy from MTCNN's 5 points [5, 2]: 1 when the nose is on the eyes' midline."""
    left, right, nose = landmarks[0].astype(np.float64), landmarks[1].astype(np.float64), landmarks[2]
    axis = right - left
    distance = float(np.hypot(*axis))
    if distance < 1e-6:
        return 0.0
    offset = abs(float(np.dot(nose - (left + right) / 2, axis)) / distance**2)
    return float(np.clip(1.0 - offset / profile_offset, 0.0, 1.0))


def frame_quality(
    detection: FaceDetection | None, chip: np.ndarray, config: QualityConfig = QualityConfig()
) -> FrameQuality:
    """Quality of one aligned face. ``detection`` is None for a client-aligned crop (sharpness only)."""
    sharpness = laplacian_variance(chip)
    sharp = sharpness / (sharpness + config.half_sharpness)
    if detection is None:
        return FrameQuality(float(sharp), 1.0, float(min(chip.shape[:2])), sharpness, 1.0)
    size = min(detection.width, detection.height)
    size_factor = float(np.clip(size / config.full_size_px, 0.0, 1.0))
    frontal = frontal_factor(detection.landmarks, config.profile_offset)
    score = detection.probability * size_factor * sharp * frontal
    return FrameQuality(float(score), float(detection.probability), float(size), sharpness, frontal)
