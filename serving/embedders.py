"""Audio → embedding for one served model: pipeline, micro-batcher and backend composed.

Used by the gRPC servicers and, without the batcher, by offline tools (calibration of a model
version as it will be served, see ``serving/offline.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from contracts.card import FaceCard
from contracts.waveforms import waveform_batch
from serving.audio.decode import DecodedAudio
from serving.audio.pipeline import AudioPipeline, PreparedAudio
from serving.errors import Unavailable
from serving.inference.backend import InferenceBackend
from serving.inference.batcher import MicroBatcher, wait
from serving.models.repository import ModelVersion


def run_queued(
    items: Sequence[np.ndarray],
    run_batch: Callable[[Sequence[np.ndarray]], np.ndarray],
    batcher: MicroBatcher | None,
    timeout: float | None,
    key: str,
) -> np.ndarray:
    """One request's items through the model: directly without a batcher, else queued together
    so that they can share a batch with other requests. [N] items → [N, D] finite float32."""
    if batcher is None:
        vectors = run_batch(items)
    else:
        futures = [batcher.submit_future(item) for item in items]
        vectors = np.stack([wait(f, timeout, key) for f in futures])
    if not np.all(np.isfinite(vectors)):
        raise Unavailable(f"model {key} returned a non-finite embedding")
    return vectors.astype(np.float32, copy=False)


class AudioEmbedder:
    """One waveform model version, served: ``embed(decoded) -> ([D] float32, PreparedAudio)``."""

    def __init__(
        self,
        model: ModelVersion,
        backend: InferenceBackend,
        pipeline: AudioPipeline,
        batcher: MicroBatcher | None = None,
    ) -> None:
        self.model, self.backend, self.pipeline, self.batcher = model, backend, pipeline, batcher
        self.key = f"{model.card.name}/{model.card.version}"
        names = {t.role: t.name for t in model.card.inputs}
        waveform_name = names.get("waveform")
        if waveform_name is None:
            raise ValueError(f"{self.key}: card has no input with role 'waveform'")
        self._waveform_name, self._lengths_name = waveform_name, names.get("lengths")

    @property
    def name(self) -> str:
        return self.model.card.name

    @property
    def version(self) -> int:
        return self.model.card.version

    def run_batch(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Padded batch through the backend: [B] clips → [B, D]."""
        feeds = waveform_batch(clips)
        inputs = {self._waveform_name: feeds["waveform"]}
        if self._lengths_name:
            inputs[self._lengths_name] = feeds["lengths"]
        return self.backend.embed(self.key, inputs)

    def embed_many(self, prepared: Sequence[PreparedAudio], timeout: float | None = None) -> np.ndarray:
        """Several clips of one request, queued together so that they can share a batch: [N, D]."""
        return run_queued([p.samples for p in prepared], self.run_batch, self.batcher, timeout, self.key)

    def embed(self, audio: DecodedAudio, timeout: float | None = None) -> tuple[np.ndarray, PreparedAudio]:
        prepared = self.pipeline.prepare(audio)
        return self.embed_many([prepared], timeout)[0], prepared


class ImageEmbedder:
    """One face model version, served: aligned chips [N, S, S, 3] uint8 → unit embeddings [N, D].

    The card's ``image`` section gives the chip size; its input with role ``image`` takes the
    batch as is (normalisation lives in the graph). Outputs are L2-normalised here because the
    gallery and the calibration score by cosine (dlib's descriptors are not unit length).
    """

    def __init__(self, model: ModelVersion, backend: InferenceBackend, batcher: MicroBatcher | None = None) -> None:
        self.model, self.backend, self.batcher = model, backend, batcher
        self.key = f"{model.card.name}/{model.card.version}"
        spec = model.card.input_with_role("image")
        if not isinstance(model.card, FaceCard) or spec is None:
            raise ValueError(f"{self.key}: not a face card with an input of role 'image'")
        self._input, self.size = spec.name, model.card.image.size
        self.alignment = model.card.image.alignment  # the chip geometry the model expects

    def run_batch(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """[B] chips [S, S, 3] uint8 → [B, D] raw model outputs."""
        return self.backend.embed(self.key, {self._input: np.stack(chips)})

    def embed_many(self, chips: Sequence[np.ndarray], timeout: float | None = None) -> np.ndarray:
        """[N] chips → [N, D] float32 unit vectors (queued together so they can share a batch)."""
        if not len(chips):
            return np.zeros((0, self.model.card.embedding_dim or 0), np.float32)
        vectors = run_queued(chips, self.run_batch, self.batcher, timeout, self.key)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if np.any(norms < 1e-12):
            raise Unavailable(f"model {self.key} returned a zero embedding")
        return vectors / norms
