"""``TrainerConfig``: the ``trainer:`` section of every recipe.

Fields whose metadata carries ``RESUME_SAFE`` may change when a run resumes (the trainer owns
that marker; ``training.recipes.resume_hash`` skips such fields in any recipe section): they change
how long a run goes and what it reports, not what a finished step computed. Everything else
(learning rate, schedule, seed, AMP…) must match the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Dataclass field metadata key: True on a field a resumed run may change (see the docstring).
RESUME_SAFE = "resume_safe"
AmpMode = Literal["auto", "bf16", "off"]
DeviceName = Literal["auto", "cpu", "cuda"]


def _safe(default: Any) -> Any:
    return field(default=default, metadata={RESUME_SAFE: True})


@dataclass(frozen=True)
class TrainerConfig:
    """How to train; the recipe's other sections say what.

    steps: total optimizer steps of the run (the dataset is indexed 0 … steps-1).
    steps_per_epoch: steps that count as one pass over the data; only the LR schedule uses it.
    lr, weight_decay: Adam's (weight decay is Adam's L2 term, as in the papers' setups).
    lr_decay, lr_decay_every_epochs: the LR is multiplied by ``lr_decay`` every
        ``lr_decay_every_epochs * steps_per_epoch`` steps (METHODS §1: Adam 1e-3, ×0.95 every 10
        epochs); ``lr_decay: 1.0`` keeps it constant.
    grad_clip: max global gradient L2 norm, or None for no clipping.
    amp: "auto" = bf16 autocast on CUDA, off on CPU; "bf16" insists (an error without a CUDA
        device that supports it); "off" = fp32. bf16 never needs a GradScaler.
    device: "auto" = CUDA when available. Under torchrun each rank takes cuda:LOCAL_RANK.
    log_every: steps between log lines (metrics.jsonl, TensorBoard, progress-bar postfix); the
        logged loss and metrics are means over those steps and over ranks.
    checkpoint_every: steps between checkpoints; 0 = only at the end. The last step always
        writes one.
    keep_checkpoints: how many step checkpoints to keep; 0 = all.
    num_workers: DataLoader worker processes (0 = load in the training process).
    seed: seeds python, numpy and torch (offset by rank) at the start of a fresh run.
    deterministic: deterministic kernels (``torch.use_deterministic_algorithms``, no cuDNN
        benchmark); slower on GPU. CPU runs are reproducible either way.
    tensorboard, progress: write ``run_dir/tb`` scalars / show a tqdm bar (rank 0 only).
    find_unused_parameters: passed to DDP; True when some step leaves a module's parameter unused
        (e.g. a head only labelled batches reach). Costs a graph walk per step.
    """

    steps: int = field(metadata={RESUME_SAFE: True})
    steps_per_epoch: int
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay: float = 0.95
    lr_decay_every_epochs: int = 10
    grad_clip: float | None = None
    amp: AmpMode = "auto"
    device: DeviceName = _safe("auto")
    log_every: int = _safe(50)
    checkpoint_every: int = _safe(1000)
    keep_checkpoints: int = _safe(3)
    num_workers: int = _safe(0)
    seed: int = 0
    deterministic: bool = False
    tensorboard: bool = _safe(True)
    progress: bool = _safe(True)
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.steps_per_epoch < 1:
            raise ValueError(f"steps and steps_per_epoch must be >= 1, got {self.steps} and {self.steps_per_epoch}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        if not 0 < self.lr_decay <= 1 or self.lr_decay_every_epochs < 1:
            raise ValueError("lr_decay must be in (0, 1] and lr_decay_every_epochs >= 1")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.log_every < 1 or self.checkpoint_every < 0 or self.keep_checkpoints < 0 or self.num_workers < 0:
            raise ValueError("log_every must be >= 1; checkpoint_every, keep_checkpoints, num_workers >= 0")

    @property
    def lr_decay_every_steps(self) -> int:
        """Steps between two LR decays."""
        return self.steps_per_epoch * self.lr_decay_every_epochs
