"""Protobuf ↔ domain conversions shared by the servicers."""

from __future__ import annotations

import numpy as np

from protos.v1 import common_pb2
from serving.audio.pipeline import AudioFields, PreparedAudio
from serving.errors import InvalidInput
from serving.gallery import EnrollMode, IdentityInfo, Media, ModelBinding

_PCM_FORMATS = {
    common_pb2.PCM_S16LE: "s16le",
    common_pb2.PCM_S32LE: "s32le",
    common_pb2.PCM_F32LE: "f32le",
}
_ENROLL_MODES: dict[int, EnrollMode] = {  # int keys: proto3 passes unknown enum values through
    common_pb2.ENROLL_MODE_UNSPECIFIED: EnrollMode.CREATE,
    common_pb2.CREATE: EnrollMode.CREATE,
    common_pb2.APPEND: EnrollMode.APPEND,
    common_pb2.REPLACE: EnrollMode.REPLACE,
}


def audio_fields(audio: common_pb2.Audio) -> AudioFields:
    """The oneof's fields as plain values for ``serving.audio.decode_request``."""
    source = audio.WhichOneof("source")
    if source == "encoded":
        return {"encoded": audio.encoded}
    if source == "pcm":
        pcm = audio.pcm
        return {
            "pcm": pcm.data,
            "sample_rate": pcm.sample_rate,
            "channels": pcm.channels,
            "pcm_format": _PCM_FORMATS.get(pcm.format, ""),
        }
    return {}


def audio_media(audio: common_pb2.Audio) -> Media:
    """The request's audio as stored enrollment media (so a later model can re-embed it)."""
    if audio.WhichOneof("source") == "encoded":
        return Media(bytes(audio.encoded), "encoded")
    pcm = audio.pcm
    fmt = _PCM_FORMATS.get(pcm.format, "unknown")
    return Media(bytes(pcm.data), f"pcm_{fmt}@{pcm.sample_rate}x{pcm.channels or 1}")


def enroll_mode(value: int) -> EnrollMode:
    try:
        return _ENROLL_MODES[value]
    except KeyError:
        raise InvalidInput(f"unknown enroll mode {value}") from None


def model_ref(binding: ModelBinding) -> common_pb2.ModelRef:
    return common_pb2.ModelRef(name=binding.name, version=binding.version)


def audio_info(prepared: PreparedAudio, input_rate: int) -> common_pb2.AudioInfo:
    return common_pb2.AudioInfo(
        input_seconds=prepared.input_seconds, speech_seconds=prepared.speech_seconds, input_sample_rate=input_rate
    )


def embedding_probe(message: common_pb2.Embedding, dim: int) -> tuple[np.ndarray, ModelBinding]:
    """A client-supplied probe embedding and the model it claims to come from."""
    vector = np.asarray(message.values, dtype=np.float32)
    if vector.shape != (dim,):
        raise InvalidInput(f"embedding has {vector.size} values; the model produces {dim}")
    if not message.model.name:
        raise InvalidInput("an embedding probe must name the model (and version) that produced it")
    return vector, ModelBinding(message.model.name, int(message.model.version))


def identity_info(info: IdentityInfo) -> common_pb2.IdentityInfo:
    return common_pb2.IdentityInfo(
        id=info.identity,
        num_samples=info.num_samples,
        created_at=info.created_at,
        updated_at=info.updated_at,
        model=model_ref(info.model),
        has_media=info.has_media,
        metadata=dict(info.metadata),
    )
