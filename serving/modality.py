"""A served modality once loaded: its embedder (model + pipeline + batcher) and its gallery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protos.v1 import common_pb2
from serving.audio.pipeline import PreparedAudio, decode_request
from serving.embedders import AudioEmbedder
from serving.gallery import Gallery, ModelBinding
from serving.models.card import ModelCard
from serving.services.convert import audio_fields


@dataclass
class AudioModality:
    embedder: AudioEmbedder
    gallery: Gallery

    @property
    def card(self) -> ModelCard:
        return self.embedder.model.card

    @property
    def binding(self) -> ModelBinding:
        return ModelBinding(self.card.name, self.card.version)

    def prepare(self, audio: common_pb2.Audio) -> tuple[PreparedAudio, int]:
        """Decode, resample, check and trim one request clip; also returns the input rate."""
        decoded = decode_request(limits=self.embedder.pipeline.limits, **audio_fields(audio))
        return self.embedder.pipeline.prepare(decoded), decoded.sample_rate

    def embed(self, clips: Sequence[common_pb2.Audio], timeout: float | None
              ) -> tuple[np.ndarray, list[tuple[PreparedAudio, int]]]:
        """[N] clips → ([N, D] embeddings, what the pipeline made of each clip)."""
        prepared = [self.prepare(clip) for clip in clips]
        return self.embedder.embed_many([p for p, _ in prepared], timeout), prepared
