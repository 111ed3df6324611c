"""The generic trainer (DESIGN §4): AMP bf16 on GPU, DDP via torchrun, exact resume, logs.

Parts: ``TrainerConfig`` (the recipe's ``trainer:`` section), ``Trainer`` (the loop),
``checkpoint`` (atomic save / resume), ``distributed`` (torchrun + DDP), ``logs`` (metrics.jsonl,
TensorBoard, progress bar), ``rng`` (seeds), ``hooks``. It never imports models, losses or data
modules: the caller composes them (see ``training.trainer.trainer`` for the contracts).
"""

from training.trainer.checkpoint import CheckpointMismatchError, latest_checkpoint, load_checkpoint
from training.trainer.config import TrainerConfig
from training.trainer.distributed import DistInfo, cleanup_distributed, init_distributed
from training.trainer.hooks import Hook, HookContext
from training.trainer.rng import seed_everything
from training.trainer.trainer import LossOutputLike, StepFn, Trainer, TrainResult

__all__ = [
    "CheckpointMismatchError",
    "DistInfo",
    "Hook",
    "HookContext",
    "LossOutputLike",
    "StepFn",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "cleanup_distributed",
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "seed_everything",
]
