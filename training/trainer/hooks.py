"""Trainer hooks: periodic evaluation, progress streaming, anything that watches a run.

Subclass ``Hook`` and override what you need. Hooks are called on **every rank**, in the order
given, at the same points (so a hook may use collectives); ``ctx.dist.is_main`` tells rank 0.
``ctx.modules`` are the plain (unwrapped) modules; a hook that evaluates should switch them to
``eval()`` under ``torch.no_grad()`` and back to ``train()`` before returning.

    class DevEer(Hook):
        def on_log(self, ctx, record):
            if ctx.step % 1000 == 0:
                return {"dev_eer": evaluate(ctx.modules["encoder"])}   # logged with the record
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from training.trainer.config import TrainerConfig
from training.trainer.distributed import DistInfo

if TYPE_CHECKING:
    from training.trainer.trainer import TrainResult


@dataclass(frozen=True)
class HookContext:
    """Where the run is. ``step`` = optimizer steps done so far."""

    step: int
    config: TrainerConfig
    dist: DistInfo
    run_dir: Path
    modules: Mapping[str, nn.Module]


class Hook:
    """No-op base class; every method is optional to override."""

    def on_start(self, ctx: HookContext) -> None:
        """Before the first step of this ``fit`` (after a resume has been applied)."""

    def on_log(self, ctx: HookContext, record: Mapping[str, Any]) -> Mapping[str, float] | None:
        """At each log step, before the record is written; returned scalars join its metrics."""
        return None

    def on_checkpoint(self, ctx: HookContext, path: Path | None) -> None:
        """After a checkpoint was written (``path`` is None on ranks other than 0)."""

    def on_end(self, ctx: HookContext, result: TrainResult) -> None:
        """After the last step (and its checkpoint)."""
