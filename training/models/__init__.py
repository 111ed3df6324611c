"""Encoders. Exported models return one embedding tensor; heads stay in the losses (DESIGN §4).

``SPEAKER_ENCODERS`` maps a recipe's model name onto the class whose constructor arguments the
recipe's model section provides; every speaker encoder takes ``(waveform [B, T], lengths [B])``
and returns raw (not normalised) embeddings ``[B, D]``. ``SOUND_ENCODERS`` does the same for
sound recipes (same waveform + lengths contract).
"""

from __future__ import annotations

from typing import Any

from training.models.base import Encoder
from training.models.ecapa_tdnn import EcapaTdnn
from training.models.resnet34 import ResNet34
from training.models.sound_cnn import SoundCnn

SPEAKER_ENCODERS: dict[str, type[Encoder]] = {"ecapa_tdnn": EcapaTdnn, "resnet34": ResNet34}
SOUND_ENCODERS: dict[str, type[Encoder]] = {"sound_cnn": SoundCnn}


def build_speaker_encoder(name: str, **kwargs: Any) -> Encoder:
    """The speaker encoder registered as ``name``, built with ``kwargs`` as its constructor arguments."""
    try:
        cls = SPEAKER_ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown speaker encoder {name!r}; known: {sorted(SPEAKER_ENCODERS)}") from None
    return cls(**kwargs)


def build_sound_encoder(name: str, **kwargs: Any) -> Encoder:
    """The sound encoder registered as ``name``, built with ``kwargs`` as its constructor arguments."""
    try:
        cls = SOUND_ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown sound encoder {name!r}; known: {sorted(SOUND_ENCODERS)}") from None
    return cls(**kwargs)


__all__ = [
    "SOUND_ENCODERS",
    "SPEAKER_ENCODERS",
    "EcapaTdnn",
    "Encoder",
    "ResNet34",
    "SoundCnn",
    "build_sound_encoder",
    "build_speaker_encoder",
]
