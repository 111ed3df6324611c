"""The interface every inference backend implements (embedded ONNX Runtime, Triton)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from serving.models.repository import ModelVersion


class InferenceBackend(Protocol):
    """Runs model versions by key. ``embed`` returns the card's embedding output, [B, D] float32."""

    def load(self, key: str, model: ModelVersion) -> None: ...

    def ready(self, key: str) -> bool: ...

    def embed(self, key: str, inputs: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def close(self) -> None: ...
