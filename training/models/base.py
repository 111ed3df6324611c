"""What every registered encoder is: a module whose output is ``embedding_dim`` wide."""

from __future__ import annotations

from torch import nn


class Encoder(nn.Module):
    """An encoder of ``SPEAKER_ENCODERS`` / ``SOUND_ENCODERS``: it sets ``embedding_dim`` (the width
    of the raw embeddings it returns), which the recipes read to size heads and cards."""

    embedding_dim: int
