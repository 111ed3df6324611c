"""Disentangling recipes (METHODS §7): the group-block VAE against the β-VAE on merged groups.

A recipe is ``kind: disentangle`` and trains ``method`` (``training.disentangle.models``:
``{name: group_blocks | beta_vae, block, hidden, beta, ...}``; ``temperature``,
``entropy_weight``, ``cluster_weight``, ``head_hidden`` for the group-prediction head) on
``data``: ``per_group`` procedural images of each of ``groups`` (``sprites``, ``shapes3d``,
``mpi3d``, or the published files of ``data.files``) at ``size``×``size``, shuffled together
with the group ids hidden from the model.
Variants differ only in their ``method`` section. Evaluation renders ``evaluation.per_group``
fresh images of each group (another seed) and writes MIG per group and merged, the head's
purity / NMI and the traversal PNGs (``training.disentangle.evaluate``). Runs write
``recipe.yaml``, ``checkpoints/``, ``metrics.jsonl``, ``run.json`` and ``eval/``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from training.trainer.config import TrainerConfig

if TYPE_CHECKING:
    from training.disentangle.groups import MergedImages
    from training.disentangle.models import BetaVAE


@dataclass(frozen=True)
class DisentangleData:
    groups: tuple[str, ...] = ("sprites", "shapes3d", "mpi3d")
    per_group: int = 2000
    size: int = 32
    batch_size: int = 64
    seed: int = 0
    # A group named here is read from its published file instead of rendered: `sprites` → the
    # dSprites npz (coloured: Color-dSprites), `mpi3d` → an MPI3D npz (no 3DShapes: needs h5py).
    files: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from training.disentangle.groups import GROUPS

        wrong = [k for k in self.files if k not in ("sprites", "mpi3d") or k not in self.groups]
        if wrong:
            raise ValueError(
                "data.files: keys among the groups' sprites / mpi3d "
                f"(3dshapes.h5 needs h5py, not installed), got {wrong}"
            )

        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown or len(set(self.groups)) != len(self.groups) or len(self.groups) < 2:
            raise ValueError(f"data.groups: two or more distinct of {', '.join(GROUPS)}, got {list(self.groups)}")
        if self.per_group < 2 or self.size < 8 or self.batch_size < 2:
            raise ValueError("data.per_group >= 2, data.size >= 8, data.batch_size >= 2")


@dataclass(frozen=True)
class DisentangleEval:
    """``per_group`` fresh images of each group (factors drawn with ``seed``), MIG's ``bins``,
    traversal ``steps`` over [−``span``, ``span``]."""

    per_group: int = 1000
    seed: int = 12345
    bins: int = 20
    steps: int = 9
    span: float = 2.5

    def __post_init__(self) -> None:
        if self.per_group < 2 or self.bins < 2 or self.steps < 2 or self.span <= 0:
            raise ValueError("evaluation: per_group, bins, steps >= 2 and span > 0")


@dataclass(frozen=True)
class DisentangleRecipe:
    trainer: TrainerConfig
    method: dict[str, Any]  # {name: group_blocks | beta_vae, ...constructor arguments}
    data: DisentangleData = field(default_factory=DisentangleData)
    evaluation: DisentangleEval = field(default_factory=DisentangleEval)
    kind: Literal["disentangle"] = "disentangle"
    export_name: str = "toitsu-disentangle"

    def __post_init__(self) -> None:
        from training.disentangle.models import MODELS

        if self.method.get("name") not in MODELS:
            raise ValueError(f"method.name must be one of {', '.join(MODELS)}, got {self.method.get('name')!r}")


class MergedBatches(Dataset):
    """Step-indexed batches (the trainer's contract): batch ``i`` is a pure function of (seed,
    rank, i), each epoch a fresh permutation. Items: ``images`` float32 [B, 3, S, S] only."""

    def __init__(self, images: np.ndarray, batch_size: int, steps: int, seed: int, rank: int = 0) -> None:
        if batch_size > len(images):
            raise ValueError(f"batch_size {batch_size} exceeds the {len(images)} training images")
        self.images, self.batch_size, self.steps, self.seed, self.rank = images, batch_size, steps, seed, rank
        self.per_epoch = len(images) // batch_size

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        epoch, within = divmod(int(i), self.per_epoch)
        order = np.random.default_rng([self.seed, self.rank, epoch]).permutation(len(self.images))
        return {"images": self.images[order[within * self.batch_size : (within + 1) * self.batch_size]]}


def training_data(data: DisentangleData) -> MergedImages:
    from training.disentangle.groups import merged_groups

    return merged_groups(data.groups, data.per_group, data.size, data.seed, data.files)


def evaluation_data(recipe: DisentangleRecipe) -> MergedImages:
    from training.disentangle.groups import merged_groups

    d, e = recipe.data, recipe.evaluation
    return merged_groups(d.groups, e.per_group, d.size, e.seed, d.files)


def build_model(recipe: DisentangleRecipe) -> BetaVAE:
    from training.disentangle.models import build_model as build

    return build(recipe.method, recipe.data.size, len(recipe.data.groups))


def build_modules(recipe: DisentangleRecipe) -> dict[str, nn.Module]:
    """``{"vae"}``: the model computes its own loss (the head's included)."""
    return {"vae": build_model(recipe)}


def vae_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
    return modules["vae"](batch["images"])


def train_disentangle_recipe(
    recipe: DisentangleRecipe, run_dir: Path, *, resume: bool = True, evaluate: bool = True
) -> dict[str, Any]:
    """Train, evaluate (``evaluate_model``'s report) and write ``run_dir/run.json``; returns it."""
    from training.recipes.config import run_identity
    from training.trainer import Trainer
    from training.trainer.distributed import cleanup_distributed, init_distributed
    from training.trainer.rng import seed_everything

    run_dir, identity = Path(run_dir), run_identity(recipe)
    dist = init_distributed(recipe.trainer.device)
    train = training_data(recipe.data)
    batches = MergedBatches(train.images, recipe.data.batch_size, recipe.trainer.steps, recipe.trainer.seed, dist.rank)
    seed_everything(recipe.trainer.seed)  # the same initial encoder / decoder for both methods of a seed
    modules = {"vae": build_model(recipe)}
    trainer = Trainer(
        recipe.trainer,
        modules,
        vae_step,
        batches,
        run_dir,
        identity=identity,
        items_per_batch=lambda b: int(len(b["images"])),
        dist=dist,
        resume=resume,
    )
    result = trainer.fit()
    run: dict[str, Any] = {
        "recipe_hash": identity.recipe_hash,
        "kind": "disentangle",
        "method": recipe.method.get("name"),
        "step": result.step,
        "wall_time_s": result.wall_time_s,
        "steps_per_s": result.steps_per_s,
        "metrics": result.metrics,
        "train_images": len(train),
    }
    if dist.is_main:
        if evaluate:
            run["eval"] = _evaluate(recipe, modules["vae"], run_dir / "eval", run_dir.name)
        (run_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    cleanup_distributed()
    return run


def _evaluate(recipe: DisentangleRecipe, model: BetaVAE, out_dir: Path, name: str) -> dict[str, Any]:
    from training.disentangle.evaluate import evaluate_model

    e = recipe.evaluation
    return evaluate_model(
        model.cpu(), evaluation_data(recipe), out_dir, name=name, bins=e.bins, steps=e.steps, span=e.span
    )


def evaluate_run(recipe: DisentangleRecipe, run_dir: Path | None, out_dir: Path, *, name: str) -> dict[str, Any]:
    """The §7 report of a run's model (or, with ``run_dir`` None, of the untrained one)."""
    from training.trainer.rng import seed_everything

    if run_dir is None:
        seed_everything(recipe.trainer.seed)  # the initial weights `toitsu train` starts from
        model = build_model(recipe)
    else:
        recipe, model, _, _ = load_disentangle_run(run_dir)
    return _evaluate(recipe, model.eval(), out_dir, name)


def load_disentangle_run(run_dir: Path) -> tuple[DisentangleRecipe, BetaVAE, int, dict[str, Any]]:
    """(recipe, model in eval mode, step, run.json or {}) from a run's latest checkpoint."""
    from training.recipes.config import load_recipe
    from training.trainer.checkpoint import latest_checkpoint, load_checkpoint

    run_dir = Path(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml", schema=DisentangleRecipe)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint")
    state = load_checkpoint(checkpoint)
    model = build_model(recipe)
    model.load_state_dict(state["modules"]["vae"])
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    return recipe, model.eval(), int(state["step"]), run


def disentangle_provenance(run_dir: Path) -> dict[str, Any]:
    """What a generator card's training provenance records of a run."""
    recipe, _, step, run = load_disentangle_run(run_dir)
    summary = {k: v for k, v in (run.get("eval") or {}).items() if k in ("mig", "mig_by_group", "purity", "nmi")}
    return {
        "kind": "training",
        "run": str(run_dir),
        "step": step,
        "recipe": (Path(run_dir) / "recipe.yaml").read_text(),
        "config_hash": run.get("recipe_hash"),
        "synthetic": None,
        "model": recipe.method.get("name"),
        "method": ", ".join(f"{k}={v}" for k, v in recipe.method.items()),
        "eval": summary or None,
        "license": "Apache-2.0",
    }
