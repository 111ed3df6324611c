"""A served modality once loaded: its embedder (model + pipeline + batcher) and its gallery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contracts.card import AnyCard
from protos.v1 import common_pb2, face_pb2
from serving.audio.pipeline import PreparedAudio, decode_request
from serving.embedders import AudioEmbedder, ImageEmbedder
from serving.errors import InvalidInput
from serving.gallery import Gallery, ModelBinding
from serving.services.convert import audio_fields
from serving.vision.decode import ImageLimits, decode_encoded, decode_raw
from serving.vision.pipeline import AlignedFace, FacePipeline

_PIXEL_FORMATS = {face_pb2.RGB8: "rgb8", face_pb2.BGR8: "bgr8", face_pb2.GRAY8: "gray8"}


class _ServedModel:
    """What every modality exposes: the served model's card and its gallery binding."""

    embedder: AudioEmbedder | ImageEmbedder

    @property
    def card(self) -> AnyCard:
        return self.embedder.model.card

    @property
    def binding(self) -> ModelBinding:
        return ModelBinding(self.card.name, self.card.version)


@dataclass
class AudioModality(_ServedModel):
    embedder: AudioEmbedder
    gallery: Gallery

    def prepare(self, audio: common_pb2.Audio) -> tuple[PreparedAudio, int]:
        """Decode, resample, check and trim one request clip; also returns the input rate."""
        decoded = decode_request(limits=self.embedder.pipeline.limits, **audio_fields(audio))
        return self.embedder.pipeline.prepare(decoded), decoded.sample_rate

    def embed(
        self, clips: Sequence[common_pb2.Audio], timeout: float | None
    ) -> tuple[np.ndarray, list[tuple[PreparedAudio, int]]]:
        """[N] clips → ([N, D] embeddings, what the pipeline made of each clip)."""
        prepared = [self.prepare(clip) for clip in clips]
        return self.embedder.embed_many([p for p, _ in prepared], timeout), prepared


@dataclass
class FaceModality(_ServedModel):
    """The face modality once loaded: detector + aligner (``pipeline``), embedder, gallery."""

    embedder: ImageEmbedder
    pipeline: FacePipeline
    gallery: Gallery
    detector: ModelBinding  # the detector model the replies name
    limits: ImageLimits

    def decode(self, image: face_pb2.Image) -> np.ndarray:
        """The request image as RGB uint8 [H, W, 3] (InvalidInput / RESOURCE_EXHAUSTED otherwise)."""
        source = image.WhichOneof("source")
        if source == "encoded":
            return decode_encoded(image.encoded, self.limits)
        if source == "raw":
            raw = image.raw
            return decode_raw(raw.data, raw.width, raw.height, _PIXEL_FORMATS.get(raw.format, ""), self.limits)
        raise InvalidInput("the image is empty: send encoded bytes or raw pixels")

    def embed(self, faces: Sequence[AlignedFace], timeout: float | None) -> np.ndarray:
        """[N] aligned faces → [N, D] unit embeddings."""
        return self.embedder.embed_many([f.chip for f in faces], timeout)
