"""The face pipeline before the embedder: decode → detect (MTCNN) → 5 points (dlib's predictor)
→ aligned chip (dlib's chip geometry) → frame quality. numpy + ONNX Runtime only (no torch).

Detection keeps only faces of probability ≥ ``min_probability`` (``face.min_probability``, 0.9 by
default; a DetectFaces request's own ``min_probability`` replaces it). Measured on the packaged
real photos (``bench/face_quality.py``), every real face, also at half and three quarters of its
size, scores ≥ 0.975, while the only non-faces MTCNN's own thresholds (0.6 / 0.7 / 0.7) let
through — a hand and a glass on the group photo's table — score 0.869 and 0.863.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts.card_sections import Alignment
from contracts.face_geometry import cut_chip
from serving.errors import InvalidInput
from serving.vision.align import fallback_chip_from_mtcnn, square_box_from_mtcnn
from serving.vision.landmarks import ShapePredictor5
from serving.vision.mtcnn import MtcnnDetector
from serving.vision.quality import FrameQuality, QualityConfig, frame_quality
from serving.vision.types import FaceDetection

DEFAULT_MIN_PROBABILITY = 0.9  # face.min_probability (see the module docstring)


@dataclass(frozen=True)
class AlignedFace:
    """One face ready to embed: ``chip`` [S, S, 3] uint8; ``detection`` None for a client crop."""

    detection: FaceDetection | None
    chip: np.ndarray
    quality: FrameQuality


class FacePipeline:
    """Detect and align faces for one embedder's chip geometry (its card's ``image.alignment``:
    chip size S, padding and the 5-point template)."""

    def __init__(
        self,
        detector: MtcnnDetector,
        landmarks: ShapePredictor5 | None,
        alignment: Alignment,
        quality: QualityConfig = QualityConfig(),
        min_probability: float = DEFAULT_MIN_PROBABILITY,
    ) -> None:
        if not 0.0 <= min_probability <= 1.0:
            raise ValueError(f"min_probability must be within [0, 1], got {min_probability:g}")
        self.detector, self.landmarks, self.quality = detector, landmarks, quality
        self.min_probability = min_probability
        self.alignment = alignment
        self.chip_size, self.padding = alignment.chip_size, alignment.padding

    def detect(self, image: np.ndarray, min_probability: float | None = None) -> list[FaceDetection]:
        """Faces in an RGB uint8 image [H, W, 3] of probability ≥ ``min_probability`` (None: the
        pipeline's default), most probable first. Below 0.7 the detector's own O-net threshold
        is the floor."""
        floor = self.min_probability if min_probability is None else min_probability
        return [d for d in self.detector.detect(image) if d.probability >= floor]

    def align(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """The aligned chip [S, S, 3] uint8 of one detected face.

        dlib's 5 points (:meth:`points5`), then dlib's own chip geometry
        (``contracts.face_geometry.cut_chip``, the function the training corpus cuts its chips
        with): the alignment dlib's descriptor was trained with (0.00-0.08 L2 from dlib's native
        pipeline, ../shared/notes/dlib_face_model.md). Without the landmark model, MTCNN's own
        points are fitted to the mean-face template (about 0.1 L2 worse).
        """
        if self.landmarks is None:
            return fallback_chip_from_mtcnn(image, detection.landmarks, size=self.chip_size, padding=self.padding)
        return cut_chip(image, self.points5(image, detection), self.alignment)

    def points5(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """dlib's 5 landmarks [5, 2] float32 (x, y pixels) of one detected face; needs the landmark model.

        Predicted inside a square, dlib-detector-like box made from MTCNN's, then once more from
        the box the landmark model's mean shape implies for those points: dlib's boxes relate to
        faces differently than MTCNN's, per person, and predicting again brought every test face
        closer to dlib's native descriptor (mean L2 0.085 → 0.060 on
        tests/serving/vision/test_pipeline_vs_dlib.py's faces). Further passes oscillate.
        """
        if self.landmarks is None:
            raise ValueError("this pipeline has no landmark model")
        points = self.landmarks.predict(image, square_box_from_mtcnn(detection.box))
        return self.landmarks.predict(image, self.landmarks.box_for(points))

    def faces(self, image: np.ndarray, limit: int | None = None) -> list[AlignedFace]:
        """Every detected face (the ``limit`` most probable) aligned and scored."""
        found = self.detect(image)[:limit]
        return [self.aligned(image, d) for d in found]

    def aligned(self, image: np.ndarray, detection: FaceDetection) -> AlignedFace:
        chip = self.align(image, detection)
        return AlignedFace(detection, chip, frame_quality(detection, chip, self.quality))

    def client_crop(self, image: np.ndarray) -> AlignedFace:
        """A crop the client aligned itself: it must already have the model's chip size."""
        if image.shape[:2] != (self.chip_size, self.chip_size):
            raise InvalidInput(
                f"an aligned crop must be {self.chip_size}×{self.chip_size} RGB for this model, "
                f"got {image.shape[1]}×{image.shape[0]}"
            )
        return AlignedFace(None, image, frame_quality(None, image, self.quality))

    def main_face(self, image: np.ndarray) -> AlignedFace:
        """The largest face of the image (the one a 1:1 or 1:N probe means); InvalidInput if none."""
        found = self.detect(image)
        if not found:
            raise InvalidInput(f"no face found in the {image.shape[1]}×{image.shape[0]} image")
        largest = max(found, key=lambda d: d.width * d.height)
        return self.aligned(image, largest)
