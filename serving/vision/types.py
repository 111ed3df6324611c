"""Plain data passed between the face pipeline's stages (no torch; numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceDetection:
    """One face found by the detector, in the pixel coordinates of the input image.

    ``box``: [4] float32 (x1, y1, x2, y2); ``landmarks``: [5, 2] float32 (x, y) in MTCNN's order —
    image-left eye centre, image-right eye centre, nose tip, mouth-left, mouth-right;
    ``probability``: the O-net face probability in [0, 1].
    """

    box: np.ndarray
    landmarks: np.ndarray
    probability: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])
