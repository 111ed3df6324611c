"""What a run reports: running means (``Meter``) and rank 0's outputs (``RunLog``).

``run_dir/metrics.jsonl`` gets one JSON line per log step::

    {"step": 100, "epoch": 0.1, "lr": 0.001, "loss": 2.31, "metrics": {"acc": 0.4, ...},
     "time": {"elapsed_s": 12.5, "steps_per_s": 8.1, "items_per_s": 1620.0}}

``loss`` and ``metrics`` are means over the steps since the previous log line and over ranks;
``time`` is wall-clock (the only part that differs between two runs of one recipe).
TensorBoard (``run_dir/tb``) gets the same numbers as scalars: ``train/loss``, ``train/lr``,
``train/<metric>``, ``perf/steps_per_s``, ``perf/items_per_s``.

On resume both are cut back to the checkpoint's step (TensorBoard's ``purge_step``), so a run
that crashed after its last checkpoint leaves no duplicate or orphaned lines, and a run split
into two ``fit`` calls writes the same lines as a straight one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from training.trainer.distributed import DistInfo, all_reduce_sum

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"


class Meter:
    """Sums of the loss and metrics on the training device (no host sync until ``compute``)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.items = 0

    def update(self, loss: torch.Tensor, metrics: Mapping[str, Any], items: int = 0) -> None:
        """Add one step's loss (0-d tensor) and metrics (floats or 0-d tensors)."""
        for key, value in {**metrics, "loss": loss}.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ValueError(f"metric {key!r} has shape {tuple(value.shape)}: metrics are scalars")
                value = value.detach().reshape(()).double()
            else:
                value = torch.tensor(float(value), dtype=torch.float64)
            value = value.to(loss.device)
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1
        self.items += items

    def compute(self, dist: DistInfo) -> tuple[dict[str, float], int]:
        """(means over steps and ranks, items summed over ranks); resets. A collective under DDP.

        Every rank must report the same metric names (they are reduced as one vector).
        """
        keys = sorted(self.sums)
        device = self.sums["loss"].device if self.sums else dist.device
        vector = torch.stack(
            [self.sums[k] for k in keys]
            + [
                torch.tensor(float(self.count), dtype=torch.float64, device=device),
                torch.tensor(float(self.items), dtype=torch.float64, device=device),
            ]
        )
        values = all_reduce_sum(vector, dist).tolist()
        count, items = values[-2], int(values[-1])
        self.sums, self.count, self.items = {}, 0, 0
        return {k: v / max(count, 1.0) for k, v in zip(keys, values[:-2])}, items

    def state_dict(self) -> dict[str, Any]:
        """Partial sums since the last log step, for exact resume."""
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "count": self.count, "items": self.items}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        """Inverse of ``state_dict``."""
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.count, self.items = int(state["count"]), int(state["items"])


class RunLog:
    """metrics.jsonl, TensorBoard and the progress bar; only rank 0 creates one."""

    def __init__(
        self, run_dir: Path, start_step: int, total_steps: int, log_every: int, tensorboard: bool, progress: bool
    ) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.writer = None
        # The end-of-run line of a run that stopped off the log grid is dropped when the run
        # is extended: a straight run has no line there (see Trainer._log_step).
        keep_start = start_step % log_every == 0
        _truncate_jsonl(self.path, start_step, keep_start)
        if tensorboard:
            self.writer = _summary_writer(Path(run_dir) / TB_DIR, purge_step=start_step + keep_start)
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            disable=not progress,
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0,
        )

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (see the module docstring) everywhere."""
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")
        step = int(record["step"])
        if self.writer is not None:
            scalars = {
                "train/loss": record["loss"],
                "train/lr": record["lr"],
                **{f"train/{k}": v for k, v in record["metrics"].items()},
                **{f"perf/{k}": v for k, v in record["time"].items() if k != "elapsed_s"},
            }
            for tag, value in scalars.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(tag, value, step)
        self.bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{record['lr']:.3g}", refresh=False)

    def advance(self, steps: int = 1) -> None:
        """Move the progress bar."""
        self.bar.update(steps)

    def close(self) -> None:
        """Flush TensorBoard and close the bar."""
        if self.writer is not None:
            self.writer.close()
        self.bar.close()


def _summary_writer(folder: Path, purge_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # the package is optional: the `train` extra brings it
        raise ImportError(
            "TensorBoard logging needs the 'tensorboard' package: pip install "
            "'toitsu[train]', or set trainer.tensorboard: false"
        ) from e
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


def _truncate_jsonl(path: Path, start_step: int, keep_start: bool) -> None:
    """Keep the lines of steps before ``start_step`` (and at it if ``keep_start``)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line)["step"]
            if step < start_step or (keep_start and step == start_step):
                keep.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a crash mid-write
    path.write_text("".join(keep), encoding="utf-8")


def is_finite(values: Mapping[str, float]) -> bool:
    """True when every value is a finite number."""
    return all(math.isfinite(v) for v in values.values())
