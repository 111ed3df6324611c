"""Encoders. Exported models return one embedding tensor; heads stay in the losses (DESIGN §4).

``SPEAKER_ENCODERS`` maps a recipe's model name onto the class whose constructor arguments the
recipe's model section provides; every speaker encoder takes ``(waveform [B, T], lengths [B])``
and returns raw (not normalised) embeddings ``[B, D]``.
"""

from __future__ import annotations

from torch import nn

from training.models.ecapa_tdnn import EcapaTdnn
from training.models.resnet34 import ResNet34

SPEAKER_ENCODERS: dict[str, type[nn.Module]] = {"ecapa_tdnn": EcapaTdnn, "resnet34": ResNet34}


def build_speaker_encoder(name: str, **kwargs) -> nn.Module:
    """The speaker encoder registered as ``name``, built with ``kwargs`` as its constructor arguments."""
    try:
        cls = SPEAKER_ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown speaker encoder {name!r}; known: {sorted(SPEAKER_ENCODERS)}") from None
    return cls(**kwargs)


__all__ = ["SPEAKER_ENCODERS", "EcapaTdnn", "ResNet34", "build_speaker_encoder"]
