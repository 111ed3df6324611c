"""The typed result every loss returns (DESIGN §4: "losses as small modules with a typed result")."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class LossOutput:
    """``loss``: scalar tensor to back-propagate; ``metrics``: plain floats for logging.

    Metrics are computed under ``torch.no_grad`` and converted with ``float`` so that a trainer
    can log them without holding the graph (the conversion syncs with the device once a step).
    """

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)
