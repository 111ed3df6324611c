"""The trainer on a toy task (CPU): the loss falls, resume is exact, checkpoints rotate and
refuse other recipes, TensorBoard and metrics.jsonl are written, hooks run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from tests.training.trainer.toy import ToyBatches, items, toy_modules, toy_step
from training.trainer import (
    CheckpointMismatchError,
    Hook,
    RunIdentity,
    Trainer,
    TrainerConfig,
    load_checkpoint,
    seed_everything,
)
from training.trainer.checkpoint import latest_checkpoint, list_checkpoints

BASE = TrainerConfig(
    steps=10,
    steps_per_epoch=4,
    lr=0.05,
    lr_decay=0.5,
    lr_decay_every_epochs=1,
    grad_clip=5.0,
    device="cpu",
    log_every=2,
    checkpoint_every=5,
    keep_checkpoints=0,
    tensorboard=False,
    progress=False,
)


def make_trainer(run_dir: Path, config: TrainerConfig = BASE, **kwargs) -> Trainer:
    seed_everything(0)  # identical initial weights for every trainer of a test
    return Trainer(config, toy_modules(), toy_step, ToyBatches(seed=3), run_dir, items_per_batch=items, **kwargs)


def read_metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


def test_loss_falls_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = dataclasses.replace(
        BASE, steps=40, steps_per_epoch=10, lr=0.1, lr_decay=0.9, log_every=5, checkpoint_every=0, progress=True
    )
    result = make_trainer(tmp_path, config).fit()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == list(range(5, 41, 5))
    assert records[-1]["loss"] < 0.2 * records[0]["loss"]
    assert set(records[0]["metrics"]) == {"w", "bias"}
    assert records[0]["lr"] == 0.1 and records[-1]["lr"] == pytest.approx(0.1 * 0.9**3)  # decays every 10
    assert result.step == 40 and result.start_step == 0
    assert result.metrics["loss"] == records[-1]["loss"]
    assert result.items_per_s is not None and result.items_per_s > 0 and result.steps_per_s > 0
    assert [p.name for _, p in list_checkpoints(tmp_path)] == ["step-00000040.pt"]  # the end always saves
    assert "recipe_hash:" in (tmp_path / "recipe.yaml").read_text()
    assert "40/40" in capsys.readouterr().err  # the progress bar reached the end


def test_exact_resume(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "a")
    straight.fit()
    # 5 steps (a log step off the grid at 5, partial meter sums), then a new trainer to 10.
    make_trainer(tmp_path / "b", dataclasses.replace(BASE, steps=5)).fit()
    resumed = make_trainer(tmp_path / "b")
    result = resumed.fit()
    assert result.start_step == 5 and result.step == 10
    for name, module in straight.modules.items():
        for (key, p), q in zip(module.state_dict().items(), resumed.modules[name].state_dict().values()):
            assert torch.equal(p, q), f"{name}.{key} differs after resume"
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")
    first_part = load_checkpoint(tmp_path / "b" / "checkpoints" / "step-00000005.pt")
    end = load_checkpoint(latest_checkpoint(tmp_path / "b"))
    # trainer.steps is resume-safe: provenance changes, the resume check does not.
    assert first_part["recipe_hash"] != end["recipe_hash"]
    assert first_part["resume_hash"] == end["resume_hash"]


def test_worker_processes_load_the_same_batches(tmp_path: Path) -> None:
    config = dataclasses.replace(BASE, steps=4, checkpoint_every=0)
    alone = make_trainer(tmp_path / "a", config)
    alone.fit()
    workers = make_trainer(tmp_path / "b", dataclasses.replace(config, num_workers=2))
    workers.fit()
    assert torch.equal(alone.modules["encoder"].linear.weight, workers.modules["encoder"].linear.weight)
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")


def test_checkpoint_rotation_and_latest(tmp_path: Path) -> None:
    config = dataclasses.replace(BASE, steps=6, checkpoint_every=1, keep_checkpoints=2)
    make_trainer(tmp_path, config).fit()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 6]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-00000006.pt"
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 6 and set(state["modules"]) == {"encoder", "loss"}
    assert {"python", "numpy", "torch"} <= set(state["ranks"][0]["rng"])


def test_refuses_checkpoint_of_another_recipe(tmp_path: Path) -> None:
    make_trainer(tmp_path, dataclasses.replace(BASE, steps=3)).fit()
    other = dataclasses.replace(BASE, steps=6, lr=0.01)
    with pytest.raises(CheckpointMismatchError, match="another recipe"):
        make_trainer(tmp_path, other).fit()
    result = make_trainer(tmp_path, other, force=True).fit()
    assert result.start_step == 3 and result.step == 6
    # The forced recipe's LR applies from the resume on (decayed ×0.5 every 4 steps).
    assert [(r["step"], r["lr"]) for r in read_metrics(tmp_path)] == [(2, 0.05), (4, 0.01), (6, 0.005)]


def test_records_the_identity_it_is_handed(tmp_path: Path) -> None:
    mine = RunIdentity(recipe_hash="a" * 64, resume_hash="b" * 64, text="model: {name: toy}\n")
    make_trainer(tmp_path, dataclasses.replace(BASE, steps=2), identity=mine).fit()
    assert (tmp_path / "recipe.yaml").read_text() == (
        f"# recipe_hash: {'a' * 64}\n# resume_hash: {'b' * 64}\nmodel: {{name: toy}}\n"
    )
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert (state["recipe_hash"], state["resume_hash"]) == ("a" * 64, "b" * 64)
    # The same trainer config under another identity is another recipe: the identity decides.
    other = dataclasses.replace(mine, resume_hash="c" * 64)
    with pytest.raises(CheckpointMismatchError, match="another recipe"):
        make_trainer(tmp_path, dataclasses.replace(BASE, steps=4), identity=other).fit()
    assert make_trainer(tmp_path, dataclasses.replace(BASE, steps=4), identity=mine).fit().start_step == 2


def test_the_trainer_imports_no_recipe_module() -> None:
    code = "import sys, training.trainer; print([m for m in sys.modules if m.startswith('training.recipes')])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_refuses_fresh_start_over_checkpoints(tmp_path: Path) -> None:
    make_trainer(tmp_path, dataclasses.replace(BASE, steps=2)).fit()
    with pytest.raises(FileExistsError):
        make_trainer(tmp_path, resume=False).fit()


def test_tensorboard_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_trainer(tmp_path, dataclasses.replace(BASE, steps=4, tensorboard=True)).fit()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/w", "train/bias", "perf/items_per_s", "perf/steps_per_s"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4]


def test_hooks_add_metrics_and_see_checkpoints(tmp_path: Path) -> None:
    class Probe(Hook):
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        def on_start(self, ctx):
            self.calls.append(("start", ctx.step))

        def on_log(self, ctx, record):
            return {"probe": float(ctx.step)}

        def on_checkpoint(self, ctx, path):
            self.calls.append(("checkpoint", ctx.step))
            assert path is not None and path.is_file()

        def on_end(self, ctx, result):
            self.calls.append(("end", result.step))

    probe = Probe()
    make_trainer(tmp_path, hooks=[probe]).fit()
    assert probe.calls == [("start", 0), ("checkpoint", 5), ("checkpoint", 10), ("end", 10)]
    assert [r["metrics"]["probe"] for r in read_metrics(tmp_path)] == [2, 4, 6, 8, 10]


def test_non_finite_loss_stops_the_run(tmp_path: Path) -> None:
    def bad_step(modules, batch):
        out = toy_step(modules, batch)
        return out.loss * float("nan")

    seed_everything(0)
    trainer = Trainer(BASE, toy_modules(), bad_step, ToyBatches(), tmp_path)
    with pytest.raises(FloatingPointError, match="step 2"):
        trainer.fit()


def test_bf16_needs_cuda(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bf16"):
        make_trainer(tmp_path, dataclasses.replace(BASE, amp="bf16")).fit()


@pytest.mark.gpu
def test_bf16_autocast_on_cuda(tmp_path: Path) -> None:
    seen: list[tuple[bool, torch.dtype]] = []

    def step(modules, batch):
        e1 = modules["encoder"](batch["x"])
        seen.append((torch.is_autocast_enabled("cuda"), e1.dtype))
        return toy_step(modules, batch)

    config = dataclasses.replace(BASE, steps=20, device="auto", amp="auto", checkpoint_every=0)
    seed_everything(0)
    modules = toy_modules()
    result = Trainer(config, modules, step, ToyBatches(), tmp_path).fit()
    assert seen and all(on and dtype == torch.bfloat16 for on, dtype in seen)
    assert all(p.dtype == torch.float32 and p.is_cuda for m in modules.values() for p in m.parameters())
    records = read_metrics(tmp_path)
    assert result.step == 20 and records[-1]["loss"] < records[0]["loss"]


@pytest.mark.gpu
def test_exact_resume_on_cuda(tmp_path: Path) -> None:
    """Dropout draws from the CUDA generator there: its state must travel in the checkpoint."""
    config = dataclasses.replace(BASE, device="cuda", amp="auto")
    straight = make_trainer(tmp_path / "a", config)
    straight.fit()
    make_trainer(tmp_path / "b", dataclasses.replace(config, steps=5)).fit()
    assert "cuda" in load_checkpoint(latest_checkpoint(tmp_path / "b"))["ranks"][0]["rng"]
    resumed = make_trainer(tmp_path / "b", config)
    resumed.fit()
    for name, module in straight.modules.items():
        for p, q in zip(module.parameters(), resumed.modules[name].parameters()):
            assert torch.equal(p, q), name
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")
