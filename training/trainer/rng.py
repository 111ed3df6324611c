"""Seeds and random-number-generator state: what makes a resumed run repeat a straight one.

The trainer itself draws no random numbers; the modules do (dropout, augmentation inside a
model) through python's ``random``, numpy's legacy global generator and torch's (CPU and the
current CUDA device). Those four states are captured into each checkpoint per rank and restored
on resume. Datasets must not depend on them: a batch is a pure function of (seed, rank, step).

Module *initialisation* happens in the caller before the trainer exists, so a caller that wants
reproducible initial weights calls ``seed_everything(seed)`` before building its modules
(under DDP rank 0's weights are broadcast to the others anyway).
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def derive_seed(seed: int, rank: int = 0) -> int:
    """A 32-bit seed for ``rank`` derived from the run seed (ranks get unrelated streams)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed python, numpy and torch (all CUDA devices too) for ``rank``; returns the seed used."""
    value = derive_seed(seed, rank)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device, lazily
    return value


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels when asked; otherwise let cuDNN pick the fastest ones on CUDA.

    Process-wide by nature (torch's flags are global): call it once, from the training process.
    """
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; read when CUDA first runs a GEMM.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def capture_rng_state() -> dict[str, Any]:
    """The state of every global generator, as plain data + tensors (``weights_only`` loadable)."""
    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple)  # numpy's global RandomState is MT19937: the legacy tuple
    kind, key, pos, has_gauss, gauss = legacy
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "key": key.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # the current device: one per rank
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["key"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
