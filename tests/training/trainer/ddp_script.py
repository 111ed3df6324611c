"""Run by test_ddp.py under torchrun (2 CPU processes, gloo): trains the toy task with DDP and
saves each rank's final parameters to RUN_DIR/params-rank<r>.pt.

    python -m torch.distributed.run --nproc_per_node=2 --standalone ddp_script.py RUN_DIR STEPS
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tests.training.trainer.toy import ToyBatches, items, toy_modules, toy_step
from training.trainer import Trainer, TrainerConfig, cleanup_distributed, init_distributed, seed_everything


def main(run_dir: Path, steps: int) -> None:
    torch.set_num_threads(1)
    dist = init_distributed("cpu")
    assert dist.world_size == 2, dist
    seed_everything(100 + dist.rank)  # different initial weights per rank: DDP must broadcast rank 0's
    modules = toy_modules()
    config = TrainerConfig(
        steps=steps,
        steps_per_epoch=10,
        lr=0.1,
        lr_decay=0.9,
        device="cpu",
        log_every=4,
        checkpoint_every=6,
        tensorboard=False,
        progress=False,
    )
    result = Trainer(
        config, modules, toy_step, ToyBatches(seed=5, rank=dist.rank), run_dir, items_per_batch=items, dist=dist
    ).fit()
    torch.save({name: m.state_dict() for name, m in modules.items()}, run_dir / f"params-rank{dist.rank}.pt")
    print(f"rank {dist.rank}: step {result.step} loss {result.metrics['loss']:.4f}", flush=True)
    cleanup_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
