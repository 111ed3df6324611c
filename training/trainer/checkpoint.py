"""Checkpoints: ``run_dir/checkpoints/step-XXXXXXXX.pt`` plus a ``latest`` pointer.

A checkpoint is one ``torch.save`` dict, loadable with ``weights_only=True`` (no pickled code)::

    format         1
    step           optimizer steps done = the next dataset index
    modules        {name: state_dict}  (unwrapped: no DDP "module." prefix)
    optimizer      Adam state_dict
    scheduler      LR scheduler state_dict
    ranks          [per rank: {"rng": capture_rng_state(), "meter": Meter.state_dict()}]
    world_size     ranks that wrote it
    recipe_hash    provenance (the run's RunIdentity, training.trainer.identity)
    resume_hash    what a resuming run must match (ditto)
    last_record    the last metrics.jsonl record, or None

Writes are atomic (a temp file in the same folder, fsync, rename), and ``latest`` is updated
only after the checkpoint file is complete, so a crash mid-save leaves the previous checkpoint
as the one to resume from. Only rank 0 writes; every rank reads the same file (multi-node runs
need ``run_dir`` on a shared filesystem).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
_NAME = re.compile(r"^step-(\d{8,})\.pt$")


class CheckpointMismatchError(RuntimeError):
    """The checkpoint was written by a different recipe (or a different set of modules)."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """``run_dir/checkpoints/step-XXXXXXXX.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in ``run_dir``, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` points to; the highest step if the pointer is missing or stale."""
    pointer = Path(run_dir) / CHECKPOINT_DIR / LATEST
    if pointer.is_file():
        target = pointer.parent / pointer.read_text(encoding="utf-8").strip()
        if _NAME.match(target.name) and target.is_file():
            return target
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(run_dir: Path, step: int, state: Mapping[str, Any], keep: int = 0) -> Path:
    """Write ``state`` as the checkpoint of ``step``, point ``latest`` at it, keep the newest ``keep``.

    ``keep=0`` keeps every checkpoint. Returns the checkpoint's path.
    """
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda f: torch.save(dict(state), f))
    _atomic_write(path.parent / LATEST, lambda f: f.write(f"{path.name}\n".encode()))
    if keep > 0:
        for _, old in list_checkpoints(run_dir)[:-keep]:
            if old != path:  # a re-run that rewrote an older step keeps what it just wrote
                old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (``weights_only``: a checkpoint cannot run code when loaded)."""
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{path} is not a Toitsu trainer checkpoint (format {FORMAT})")
    return state


def check_compatible(
    state: Mapping[str, Any], path: Path, resume_hash: str, module_names: set[str], force: bool = False
) -> None:
    """Refuse to resume from a checkpoint of another recipe unless ``force``.

    Different module names are refused even with ``force``: their weights cannot be loaded.
    """
    saved = set(state["modules"])
    if saved != module_names:
        raise CheckpointMismatchError(f"{path} holds modules {sorted(saved)}, this run has {sorted(module_names)}")
    if state["resume_hash"] != resume_hash and not force:
        raise CheckpointMismatchError(
            f"{path} was written by another recipe (resume hash {state['resume_hash'][:12]}…, this "
            f"recipe {resume_hash[:12]}…). Use a new run folder, restore the old recipe, or force "
            "the resume (force=True / --force) if the change is intended."
        )


def module_states(modules: Mapping[str, nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
    """State dicts of (unwrapped) modules, keyed by their names."""
    return {name: module.state_dict() for name, module in modules.items()}


def load_module_states(modules: Mapping[str, nn.Module], states: Mapping[str, Mapping[str, Any]]) -> None:
    """Load each module's state dict strictly (a missing or extra key is an error)."""
    for name, module in modules.items():
        module.load_state_dict(states[name], strict=True)
