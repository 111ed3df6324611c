"""A served modality once loaded: its embedder (model + pipeline + batcher) and its gallery.

``embed_media`` re-embeds what a gallery stored (``serving.gallery.Media``) with this modality's
model: an activation loads the new version as a full modality and has it embed the old
gallery's media. It runs on the caller's thread in small direct batches, never through the
micro-batcher, so that live requests keep the batcher to themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from contracts.card import AnyCard
from contracts.card_sections import Alignment
from protos.v1 import common_pb2, face_pb2
from serving.audio.pipeline import PreparedAudio, decode_request
from serving.embedders import AudioEmbedder, ImageEmbedder, run_queued
from serving.errors import InvalidInput
from serving.gallery import Gallery, Media, ModelBinding
from serving.scoring import Scorer
from serving.services.convert import audio_fields
from serving.vision.decode import ImageLimits, decode_encoded, decode_raw
from serving.vision.pipeline import AlignedFace, FacePipeline

_PIXEL_FORMATS = {face_pb2.RGB8: "rgb8", face_pb2.BGR8: "bgr8", face_pb2.GRAY8: "gray8"}
MEDIA_BATCH = 8  # items per direct backend call when re-embedding stored media


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms < 1e-12):
        raise InvalidInput("the model returned a zero embedding for stored media")
    return (vectors / norms).astype(np.float32)


def pcm_fields(fmt: str) -> tuple[str, int, int]:
    """``"pcm_s16le@16000x1"`` (serving.services.convert.audio_media) → (pcm format, rate, channels)."""
    try:
        kind, _, rest = fmt.removeprefix("pcm_").partition("@")
        rate, _, channels = rest.partition("x")
        return kind, int(rate), int(channels or 1)
    except ValueError:
        raise InvalidInput(f"stored media format {fmt!r} is not a PCM format this server wrote") from None


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
    scorer: Scorer = field(default_factory=Scorer)  # [speaker] scoring: cosine or AS-norm

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

    def embed_media(self, media: Sequence[Media], batch: int = MEDIA_BATCH) -> np.ndarray:
        """Stored clips ("encoded" bytes or "pcm_<fmt>@<rate>x<channels>") → [N, D] unit embeddings,
        through this modality's pipeline (resample, VAD) exactly as a request's clip would go."""
        prepared = []
        for item in media:
            if item.format == "encoded":
                decoded = decode_request(encoded=item.data, limits=self.embedder.pipeline.limits)
            elif item.format.startswith("pcm_"):
                kind, rate, channels = pcm_fields(item.format)
                decoded = decode_request(
                    pcm=item.data,
                    sample_rate=rate,
                    channels=channels,
                    pcm_format=kind,
                    limits=self.embedder.pipeline.limits,
                )
            else:
                raise InvalidInput(f"stored media format {item.format!r} is not audio this server can re-embed")
            prepared.append(self.embedder.pipeline.prepare(decoded).samples)
        dim = self.card.embedding_dim or 0
        parts = [
            run_queued(prepared[i : i + batch], self.embedder.run_batch, None, None, self.embedder.key)
            for i in range(0, len(prepared), batch)
        ]
        return _unit(np.concatenate(parts)) if parts else np.zeros((0, dim), np.float32)


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

    def embed_media(
        self, media: Sequence[Media], *, chips_from: Alignment | None = None, batch: int = MEDIA_BATCH
    ) -> np.ndarray:
        """Stored images → [N, D] unit embeddings with this model.

        "encoded" images are detected and aligned again (the largest face, as Enroll does);
        "png/aligned-chip" chips (EnrollTracks) were cut with ``chips_from``, the geometry of the
        model that stored them (default: this model's). Same template and padding at another chip
        size is a resize; any other geometry cannot be recovered from a chip: InvalidInput.
        """
        chips = [self._chip(item, chips_from or self.embedder.alignment) for item in media]
        dim = self.card.embedding_dim or 0
        parts = [
            run_queued(chips[i : i + batch], self.embedder.run_batch, None, None, self.embedder.key)
            for i in range(0, len(chips), batch)
        ]
        return _unit(np.concatenate(parts)) if parts else np.zeros((0, dim), np.float32)

    def _chip(self, item: Media, source: Alignment) -> np.ndarray:
        if item.format == "encoded":
            return self.pipeline.main_face(decode_encoded(item.data, self.limits)).chip
        if item.format != "png/aligned-chip":
            raise InvalidInput(f"stored media format {item.format!r} is not an image this server can re-embed")
        target = self.embedder.alignment
        chip = decode_encoded(item.data, self.limits)
        same_shape = source.template == target.template and source.padding == target.padding
        if not same_shape or source.landmarks != target.landmarks:
            raise InvalidInput(
                f"face chips stored for a {source.chip_size}px chip with padding {source.padding:g} cannot be "
                f"re-cut for {self.card.name} v{self.card.version} (padding {target.padding:g}, another template); "
                "enroll these people again from images"
            )
        if chip.shape[:2] != (target.chip_size, target.chip_size):
            from PIL import Image  # the serve extra's image library

            resized = Image.fromarray(chip).resize((target.chip_size, target.chip_size), Image.Resampling.BILINEAR)
            chip = np.asarray(resized, dtype=np.uint8)
        return chip
