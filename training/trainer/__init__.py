"""The generic trainer (DESIGN §4): AMP bf16 on GPU, DDP via torchrun, exact resume, logs.

Parts: ``TrainerConfig`` (the recipe's ``trainer:`` section), ``Trainer`` (the loop),
``checkpoint`` (atomic save / resume), ``distributed`` (torchrun + DDP), ``logs`` (metrics.jsonl,
TensorBoard, progress bar), ``rng`` (seeds), ``hooks``, ``identity`` (what it records of a
recipe). It never imports models, losses, data modules or recipes: the caller composes them and
hands over the recipe as a ``RunIdentity`` (see ``training.trainer.trainer`` for the contracts).
"""

from training.trainer.checkpoint import CheckpointMismatchError, latest_checkpoint, load_checkpoint
from training.trainer.config import TrainerConfig
from training.trainer.distributed import DistInfo, cleanup_distributed, init_distributed
from training.trainer.hooks import Hook, HookContext
from training.trainer.identity import RunIdentity, config_identity
from training.trainer.rng import seed_everything
from training.trainer.trainer import LossOutputLike, StepFn, Trainer, TrainResult

__all__ = [
    "CheckpointMismatchError",
    "DistInfo",
    "Hook",
    "HookContext",
    "LossOutputLike",
    "RunIdentity",
    "StepFn",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "cleanup_distributed",
    "config_identity",
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "seed_everything",
]
