"""The generic trainer: plain PyTorch, step-based, resumable (DESIGN §4 "Trainer").

It knows nothing about speakers or faces: the caller passes named modules, a step function and a
dataset indexed by step::

    def step_fn(modules, batch):                     # modules: DDP-wrapped when distributed
        a = modules["encoder"](batch["a"])           # call modules (forward) — see distributed.py
        b = modules["encoder"](batch["b"])
        return modules["loss"](a, b, batch["labels"])  # anything with .loss and .metrics

    trainer = Trainer(cfg.trainer, {"encoder": enc, "loss": loss}, step_fn,
                      dataset, Path("runs/gcl"), identity=run_identity(cfg),
                      items_per_batch=lambda b: len(b["labels"]))
    result = trainer.fit()

Contracts
- ``dataset[i]`` for i in 0 … steps-1 returns the batch of step i (a dict of tensors / arrays /
  other values; numpy arrays become tensors, tensors go to the device with ``non_blocking``).
  It must be a pure function of (seed, rank, i) and already specific to this rank: the trainer
  hands each rank ``range(start_step, steps)`` and nothing else, which is what makes resume exact.
- ``step_fn(modules, batch)`` runs under bf16 autocast when AMP is on and returns an object with
  ``.loss`` (0-d tensor) and ``.metrics`` (a mapping of names to floats or 1-element tensors; the
  same names on every rank and step). The trainer does zero_grad, backward, clipping, the
  optimizer and scheduler steps. A bare tensor is accepted as the loss with no metrics.
- ``modules``: every one is moved to the device, put in train mode, optimised (one Adam over all
  their trainable parameters) and checkpointed. Parameters with ``requires_grad=False`` are
  carried but not optimised.

Resume: with ``resume=True`` (default) ``fit`` continues from ``run_dir``'s latest checkpoint —
weights, optimizer, scheduler, per-rank RNG states and partial log sums — and a run of N steps
split by a crash and a resume ends bit-identical to a straight one (same world size, CPU, or
``deterministic`` on GPU). A checkpoint from another recipe is refused unless ``force=True``;
``resume=False`` on a folder that has checkpoints is refused too (pick a new folder).

The recipe reaches the trainer only as a ``RunIdentity`` (two hashes and the resolved text, see
``training.trainer.identity``): the trainer never imports ``training.recipes``.

Outputs in ``run_dir``: ``recipe.yaml`` (resolved, hashes in its header), ``checkpoints/``,
``metrics.jsonl``, ``tb/`` (see ``training.trainer.logs``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from training.trainer import checkpoint as ckpt
from training.trainer.config import TrainerConfig
from training.trainer.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    init_distributed,
    out_of_sync,
    wrap_modules,
)
from training.trainer.hooks import Hook, HookContext
from training.trainer.identity import RunIdentity, config_identity
from training.trainer.logs import Meter, RunLog, is_finite
from training.trainer.rng import capture_rng_state, configure_determinism, restore_rng_state, seed_everything

RECIPE_FILE = "recipe.yaml"


class LossOutputLike(Protocol):
    """What a step function returns: the loss to minimise and scalars to log."""

    loss: torch.Tensor
    metrics: Mapping[str, Any]


StepFn = Callable[[Mapping[str, nn.Module], dict[str, Any]], "LossOutputLike | torch.Tensor"]


@dataclass(frozen=True)
class TrainResult:
    """What ``fit`` did. ``metrics`` = the last log record's loss and metrics."""

    step: int
    start_step: int
    metrics: dict[str, float]
    wall_time_s: float
    steps_per_s: float
    items_per_s: float | None
    checkpoint: Path | None


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mode`` on ``device`` (None = fp32)."""
    if mode == "off":
        return None
    usable = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if mode == "auto":
        return torch.bfloat16 if usable else None
    if not usable:
        raise ValueError(
            "amp: bf16 needs a CUDA device with bf16 support (Ampere or newer); "
            "use amp: auto (bf16 where possible) or off"
        )
    return torch.bfloat16


def trainable_parameters(modules: Mapping[str, nn.Module]) -> list[nn.Parameter]:
    """Every parameter that requires a gradient, once (modules may share parameters)."""
    seen: set[int] = set()
    out = []
    for module in modules.values():
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors in (nested) dicts / lists / tuples moved to ``device``; other values kept."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _unpack(out: Any) -> tuple[torch.Tensor, Mapping[str, Any]]:
    loss, metrics = (out, {}) if isinstance(out, torch.Tensor) else (out.loss, getattr(out, "metrics", {}) or {})
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise ValueError(
            f"step_fn must return a 0-d loss tensor, got {type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}"
        )
    return loss, metrics


class Trainer:
    """Trains ``modules`` with ``step_fn`` over ``dataset`` (see the module docstring)."""

    def __init__(
        self,
        config: TrainerConfig,
        modules: Mapping[str, nn.Module],
        step_fn: StepFn,
        dataset: Dataset,
        run_dir: Path,
        *,
        hooks: Sequence[Hook] = (),
        items_per_batch: Callable[[Any], int] | None = None,
        identity: RunIdentity | None = None,
        dist: DistInfo | None = None,
        resume: bool = True,
        force: bool = False,
    ) -> None:
        """Stores its arguments; all work happens in ``fit``.

        identity: the resolved recipe's hashes (into checkpoints) and text (``run_dir/recipe.yaml``),
            from ``training.recipes.config.run_identity``; default: ``config`` alone.
        dist: from ``init_distributed`` (default: ``fit`` calls it with ``config.device``).
        items_per_batch: items in a batch (before it moves to the device), for items/s.
        """
        if not modules:
            raise ValueError("Trainer needs at least one module")
        self.config, self.modules, self.step_fn = config, dict(modules), step_fn
        self.dataset, self.run_dir, self.hooks = dataset, Path(run_dir), list(hooks)
        self.items_per_batch = items_per_batch
        self.identity = config_identity(config) if identity is None else identity
        self._dist, self.resume, self.force = dist, resume, force

    @property
    def dist(self) -> DistInfo:
        """The process group this trainer runs in (given, or set up by ``fit``)."""
        if self._dist is None:
            raise RuntimeError("the trainer has no distributed context before fit() sets it up")
        return self._dist

    # ------------------------------------------------------------------------------- setup

    def _setup(self) -> None:
        cfg = self.config
        self._dist = self._dist or init_distributed(cfg.device)
        configure_determinism(cfg.deterministic, self.dist.device)
        self._amp = resolve_amp(cfg.amp, self.dist.device)
        for module in self.modules.values():
            module.to(self.dist.device).train()
        self._params = trainable_parameters(self.modules)
        if not self._params:
            raise ValueError("no module has a parameter that requires a gradient")
        self.optimizer = torch.optim.Adam(self._params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=cfg.lr_decay_every_steps, gamma=cfg.lr_decay
        )
        self.meter, self._lr = Meter(), cfg.lr
        self._last_record: dict[str, Any] | None = None
        self._hashes = {"recipe_hash": self.identity.recipe_hash, "resume_hash": self.identity.resume_hash}
        self.start_step = self._resume_or_seed()
        # Wrap after loading: DDP broadcasts rank 0's weights when it wraps.
        self._wrapped = wrap_modules(self.modules, self.dist, cfg.find_unused_parameters)
        self._log = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            text = self.identity.header() + self.identity.text
            (self.run_dir / RECIPE_FILE).write_text(text, encoding="utf-8")
            self._log = RunLog(self.run_dir, self.start_step, cfg.steps, cfg.log_every, cfg.tensorboard, cfg.progress)

    def _resume_or_seed(self) -> int:
        path = ckpt.latest_checkpoint(self.run_dir)
        if path is not None and not self.resume:
            raise FileExistsError(
                f"{self.run_dir} already has checkpoints and resume is off: use a new run folder, or resume"
            )
        if path is None:
            seed_everything(self.config.seed, self.dist.rank)
            return 0
        state = ckpt.load_checkpoint(path)
        ckpt.check_compatible(state, path, self._hashes["resume_hash"], set(self.modules), self.force)
        ckpt.load_module_states(self.modules, state["modules"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["resume_hash"] != self._hashes["resume_hash"]:  # forced: this recipe's settings win
            self._apply_optimizer_settings()
        ranks = state["ranks"]
        if len(ranks) == self.dist.world_size:
            restore_rng_state(ranks[self.dist.rank]["rng"])
            self.meter.load_state_dict(ranks[self.dist.rank]["meter"], self.dist.device)
        else:  # another world size: weights carry over, exact repetition cannot
            seed_everything(self.config.seed + state["step"], self.dist.rank)
        self._last_record = state.get("last_record")
        return int(state["step"])

    def _apply_optimizer_settings(self) -> None:
        """After a forced resume: the config's LR, decay and weight decay replace the saved ones,
        with the decays the finished steps earned (the saved state restored Adam's moments)."""
        cfg, sched = self.config, self.scheduler
        sched.step_size, sched.gamma = cfg.lr_decay_every_steps, cfg.lr_decay
        lr = cfg.lr * cfg.lr_decay ** (sched.last_epoch // cfg.lr_decay_every_steps)
        for group in self.optimizer.param_groups:
            group.update(lr=lr, initial_lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched.base_lrs = [cfg.lr] * len(self.optimizer.param_groups)
        sched._last_lr = [lr] * len(self.optimizer.param_groups)

    # -------------------------------------------------------------------------------- loop

    def fit(self) -> TrainResult:
        """Train from the latest checkpoint (or from scratch) to ``config.steps``."""
        self._setup()
        try:
            return self._run()
        finally:
            if self._log is not None:
                self._log.close()

    def _run(self) -> TrainResult:
        cfg, start = self.config, self.start_step
        for hook in self.hooks:
            hook.on_start(self._ctx(start))
        t0 = time.perf_counter()
        self._mark, self._items_total, saved, step = (t0, start), 0, None, start
        if start < cfg.steps:
            for index, batch in zip(range(start, cfg.steps), self._loader(start)):
                self._train_step(batch)
                step = index + 1
                if step % cfg.log_every == 0 or step == cfg.steps:
                    self._log_step(step, t0)
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
                    saved = self._checkpoint(step)
                if self._log is not None:
                    self._log.advance()
        barrier(self.dist)
        return self._finish(start, step, time.perf_counter() - t0, saved)

    def _loader(self, start: int) -> DataLoader:
        cuda = self.dist.device.type == "cuda"
        # A private generator: the loader would otherwise draw its worker seed from torch's
        # global RNG, which a resumed run must find exactly where the checkpoint left it.
        generator = torch.Generator().manual_seed(self.config.seed)
        return DataLoader(
            self.dataset,
            batch_size=None,
            sampler=range(start, self.config.steps),
            num_workers=self.config.num_workers,
            pin_memory=cuda,
            generator=generator,
        )

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.dist.device.type, dtype=self._amp)

    def _train_step(self, batch: Any) -> None:
        items = self.items_per_batch(batch) if self.items_per_batch else 0
        batch = to_device(batch, self.dist.device)
        with self._autocast():
            loss, metrics = _unpack(self.step_fn(self._wrapped, batch))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.config.grad_clip)
        self._lr = self.optimizer.param_groups[0]["lr"]  # the LR this step used
        self.optimizer.step()
        self.scheduler.step()
        self.meter.update(loss, metrics, items)

    def _log_step(self, step: int, t0: float) -> None:
        # The last step logs even off the log_every grid; its partial sums stay in the meter
        # (and so in the checkpoint) so that extending the run logs what a straight run would.
        off_grid = step % self.config.log_every != 0
        partial = self.meter.state_dict() if off_grid else None
        values, items = self.meter.compute(self.dist)  # a collective: every rank logs
        if partial is not None:
            self.meter.load_state_dict(partial, self.dist.device)
        now = time.perf_counter()
        seconds, steps = max(now - self._mark[0], 1e-9), step - self._mark[1]
        self._mark, self._items_total = (now, step), self._items_total + items
        loss = values.pop("loss")
        timing = {"elapsed_s": now - t0, "steps_per_s": steps / seconds}
        if self.items_per_batch is not None:
            timing["items_per_s"] = items / seconds
        record: dict[str, Any] = {
            "step": step,
            "epoch": step / self.config.steps_per_epoch,
            "lr": self._lr,
            "loss": loss,
            "metrics": values,
            "time": timing,
        }
        for hook in self.hooks:
            extra = hook.on_log(self._ctx(step), record)
            values.update({k: float(v) for k, v in (extra or {}).items()})
        if self._log is not None:
            self._log.write(record)
        self._last_record = record
        if not is_finite({"loss": loss, **values}):
            raise FloatingPointError(f"non-finite loss or metric at step {step}: loss {loss}, {values}")

    def _checkpoint(self, step: int) -> Path | None:
        per_rank = all_gather_objects({"rng": capture_rng_state(), "meter": self.meter.state_dict()}, self.dist)
        drifted = out_of_sync(self.modules, self.dist)
        if drifted:
            raise RuntimeError(
                f"ranks hold different parameters of {drifted} at step {step}: the step "
                "function must call these modules (forward) for DDP to sync them"
            )
        path = None
        if self.dist.is_main:
            state = {
                "format": ckpt.FORMAT,
                "step": step,
                "modules": ckpt.module_states(self.modules),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "ranks": per_rank,
                "world_size": self.dist.world_size,
                "last_record": self._last_record,
                **self._hashes,
            }
            path = ckpt.save_checkpoint(self.run_dir, step, state, self.config.keep_checkpoints)
        for hook in self.hooks:
            hook.on_checkpoint(self._ctx(step), path)
        return path

    def _finish(self, start: int, step: int, wall: float, saved: Path | None) -> TrainResult:
        record, done = self._last_record or {}, step - start
        result = TrainResult(
            step=step,
            start_step=start,
            metrics={"loss": record["loss"], **record["metrics"]} if record else {},
            wall_time_s=wall,
            steps_per_s=done / wall if wall > 0 else 0.0,
            items_per_s=self._items_total / wall if self.items_per_batch and wall > 0 else None,
            checkpoint=saved or ckpt.latest_checkpoint(self.run_dir),
        )
        for hook in self.hooks:
            hook.on_end(self._ctx(step), result)
        return result

    def _ctx(self, step: int) -> HookContext:
        return HookContext(step=step, config=self.config, dist=self.dist, run_dir=self.run_dir, modules=self.modules)
