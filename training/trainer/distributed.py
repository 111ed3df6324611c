"""DDP helpers for runs launched by ``torchrun`` (single-process when its variables are absent).

Usage (what ``toitsu train`` does)::

    dist = init_distributed("auto")            # reads RANK, WORLD_SIZE, LOCAL_RANK
    dataset = SpeakerBatches(..., rank=dist.rank, world_size=dist.world_size)
    Trainer(cfg.trainer, modules, step_fn, dataset, run_dir, dist=dist).fit()
    cleanup_distributed()

    torchrun --nproc_per_node=8 -m toitsu train recipe.yaml     # 8 GPUs, NCCL
    torchrun --nproc_per_node=2 ... on CPU                        # gloo

How modules are wrapped: every module that has a parameter requiring a gradient — the encoder
*and* the loss (its learnable scale/bias, margin-head weights) — gets its own
``DistributedDataParallel`` wrapper, so each one's gradients are averaged over ranks during
backward, overlapped with it. Modules without trainable parameters (a frozen teacher) stay
unwrapped. The step function receives the wrapped modules and must call them (``forward``):
DDP synchronises only the gradients of a module whose forward ran in this step. Reading a
wrapped module's parameters directly, or calling another method on ``.module``, bypasses it;
the trainer checks at every checkpoint that all ranks still hold the same parameters and
raises, naming the module, if they drifted. A module may be called several times per step (two
crops through the encoder). A module whose parameters a step may leave unused needs
``find_unused_parameters: true``.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as td
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run. ``device`` is the one it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0: the one that logs, shows progress and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one rank is running."""
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" → cuda:local_rank when CUDA is available, else cpu; "cuda" insists on CUDA."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name not in ("auto", "cpu"):
        raise ValueError(f"unknown device {name!r}: expected auto, cpu or cuda")
    return torch.device("cpu")


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join torchrun's process group (gloo on CPU, NCCL on CUDA), or run alone without one.

    Idempotent: an already initialised process group is reused.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not td.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)  # NCCL and all_gather_object use the current device
        td.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo",
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    """Leave the process group (if any); call once at the end of the process."""
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def is_main() -> bool:
    """Rank 0, or no process group at all."""
    return not (td.is_available() and td.is_initialized()) or td.get_rank() == 0


def barrier(dist: DistInfo) -> None:
    """Wait for every rank (no-op alone)."""
    if dist.distributed:
        td.barrier()


def wrap_modules(
    modules: Mapping[str, nn.Module], dist: DistInfo, find_unused_parameters: bool = False
) -> dict[str, nn.Module]:
    """Each module with trainable parameters in its own DDP wrapper (see the module docstring).

    Modules must already be on ``dist.device``. Alone, the modules come back unchanged.
    """
    if not dist.distributed:
        return dict(modules)
    out: dict[str, nn.Module] = {}
    for name, module in modules.items():
        if any(p.requires_grad for p in module.parameters()):
            ids = [dist.device.index] if dist.device.type == "cuda" else None
            out[name] = DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)
        else:
            out[name] = module
    return out


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def all_reduce_sum(tensor: torch.Tensor, dist: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op alone); returns it."""
    if dist.distributed:
        td.all_reduce(tensor, op=td.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any, dist: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` alone."""
    if not dist.distributed:
        return [obj]
    out: list[Any] = [None] * dist.world_size
    td.all_gather_object(out, obj)
    return out


def out_of_sync(modules: Mapping[str, nn.Module], dist: DistInfo) -> list[str]:
    """Names of modules whose parameters differ between ranks (a float64 checksum per module)."""
    if not dist.distributed:
        return []
    names = sorted(modules)
    sums = torch.zeros(len(names), dtype=torch.float64, device=dist.device)
    for i, name in enumerate(names):
        for p in unwrap(modules[name]).parameters():
            sums[i] += p.detach().double().sum()
    gathered = [torch.zeros_like(sums) for _ in range(dist.world_size)]
    td.all_gather(gathered, sums)
    return [n for i, n in enumerate(names) if any(not torch.equal(g[i], gathered[0][i]) for g in gathered)]
