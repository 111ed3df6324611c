"""Generative recipes (METHODS §6): the label-prior VAE against the conditional VAE and M2.

A generative recipe is ``kind: generative`` and trains ``model`` (``training.generative.models``:
``{name: label_prior | cvae | m2, latent, hidden, beta, ...}``; ``classify_weight`` for the
label prior's classification term on μ(x), ``alpha`` for M2's classifier) on ``data``:

- ``source: digits``: scikit-learn's 8×8 digits, ``test_fraction`` of each class held out;
- ``source: idx`` (MNIST / EMNIST / Kuzushiji-MNIST layout, ``prefix`` such as
  ``emnist-balanced-``, ``transpose`` for EMNIST) or ``source: npz`` (Kuzushiji's npz files)
  in the folder ``path``, with their own train / test files.

``labelled_fraction`` < 1 keeps that share of each class's labels (the rest train unlabelled),
which only M2 can use. Evaluation (``evaluation``): an independent classifier trained on the real
training split scores ``samples_per_class`` generated images per class (requested-class
accuracy), FID and KID on its features against the test images, the test ELBO and an
importance-sampled log-likelihood bound, and one PNG grid per class. Runs write ``recipe.yaml``,
``checkpoints/``, ``metrics.jsonl``, ``run.json`` and ``eval/`` (report.json, class-*.png).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch import nn

from training.trainer.config import TrainerConfig

if TYPE_CHECKING:
    from training.generative.models import VAEBase


@dataclass(frozen=True)
class GenerativeData:
    source: Literal["digits", "idx", "npz"] = "digits"
    path: str | None = None
    prefix: str = ""
    transpose: bool = False
    test_fraction: float = 0.2
    labelled_fraction: float = 1.0
    batch_size: int = 64
    seed: int = 0
    # The images' size and class count, so that the model builds from the recipe alone (digits:
    # 8×8, 10); checked against the files when they are read.
    height: int = 8
    width: int = 8
    classes: int = 10

    def __post_init__(self) -> None:
        if (self.source == "digits") != (self.path is None):
            raise ValueError("data.path names the idx / npz folder, and only for those sources")
        if not 0 < self.test_fraction < 1 or not 0 < self.labelled_fraction <= 1:
            raise ValueError("data.test_fraction must be in (0, 1) and data.labelled_fraction in (0, 1]")
        if self.batch_size < 2:
            raise ValueError("data.batch_size must be >= 2")


@dataclass(frozen=True)
class GenerativeEval:
    """``grid``² images per class PNG; the classifier's own training settings and seed."""

    samples_per_class: int = 100
    grid: int = 8
    iw_samples: int = 64
    max_test_images: int = 2000
    classifier_epochs: int = 40
    classifier_seed: int = 1234
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples_per_class < 2 or self.grid < 1 or self.iw_samples < 1 or self.classifier_epochs < 1:
            raise ValueError("evaluation: samples_per_class >= 2; grid, iw_samples, classifier_epochs >= 1")


@dataclass(frozen=True)
class GenerativeRecipe:
    trainer: TrainerConfig
    model: dict[str, Any]  # {name: label_prior | cvae | m2, ...constructor arguments}
    data: GenerativeData = field(default_factory=GenerativeData)
    evaluation: GenerativeEval = field(default_factory=GenerativeEval)
    kind: Literal["generative"] = "generative"
    export_name: str = "toitsu-generator"

    def __post_init__(self) -> None:
        from training.generative.models import MODELS

        if self.model.get("name") not in MODELS:
            raise ValueError(f"model.name must be one of {', '.join(MODELS)}, got {self.model.get('name')!r}")
        if self.data.labelled_fraction < 1 and self.model["name"] != "m2":
            raise ValueError("data.labelled_fraction < 1 needs model.name m2 (the others need every label)")


# ------------------------------------------------------------------------------ building


def load_splits(data: GenerativeData):
    """(train, test) ``LabelledImages`` of the recipe's source."""
    from training.generative import data as gd

    if data.source == "digits":
        images = gd.load_digits_images()
        held = gd.split_stratified(images.labels, data.test_fraction, data.seed)
        return images.take(~held), images.take(held)
    assert data.path is not None
    if data.source == "idx":
        folder, prefix, transpose = Path(data.path), data.prefix, data.transpose
        return (
            gd.load_idx_split(folder, "train", prefix=prefix, transpose=transpose),
            gd.load_idx_split(folder, "t10k", prefix=prefix, transpose=transpose),
        )
    prefix = data.prefix or "kmnist"
    return gd.load_npz_split(Path(data.path), "train", prefix=prefix), gd.load_npz_split(
        Path(data.path), "test", prefix=prefix
    )


def checked_splits(data: GenerativeData):
    """``load_splits``, refusing images of another size or class count than the recipe says."""
    train, test = load_splits(data)
    for split, images in (("train", train), ("test", test)):
        # The labels' maximum gives the class count; a test split may lack the last classes.
        if images.shape != (data.height, data.width) or images.classes > data.classes:
            raise ValueError(
                f"the {split} images are {images.shape[0]}×{images.shape[1]} with labels up to "
                f"{images.classes - 1}; the recipe says data.height={data.height}, "
                f"data.width={data.width}, data.classes={data.classes}"
            )
    return train, test


def build_model(recipe: GenerativeRecipe) -> VAEBase:
    from training.generative.models import build_vae

    d = recipe.data
    return build_vae(recipe.model, d.height, d.width, d.classes)


def build_modules(recipe: GenerativeRecipe) -> dict[str, nn.Module]:
    """``{"vae"}``: the model computes its own loss."""
    return {"vae": build_model(recipe)}


def vae_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
    return modules["vae"](batch["images"], batch["labels"], batch["labelled"])


def train_generative_recipe(
    recipe: GenerativeRecipe, run_dir: Path, *, resume: bool = True, evaluate: bool = True
) -> dict[str, Any]:
    """Train, evaluate (``evaluate_run``'s report) and write ``run_dir/run.json``; returns it."""
    from training.generative.data import ImageBatches, split_stratified
    from training.recipes.config import run_identity
    from training.trainer import Trainer
    from training.trainer.distributed import cleanup_distributed, init_distributed
    from training.trainer.rng import seed_everything

    run_dir, identity = Path(run_dir), run_identity(recipe)
    dist = init_distributed(recipe.trainer.device)
    train, test = checked_splits(recipe.data)
    labelled = split_stratified(train.labels, recipe.data.labelled_fraction, recipe.data.seed)
    batches = ImageBatches(
        train, labelled, recipe.data.batch_size, recipe.trainer.steps, recipe.trainer.seed, rank=dist.rank
    )
    seed_everything(recipe.trainer.seed)  # the same initial weights for every model of one seed
    modules = {"vae": build_model(recipe)}
    trainer = Trainer(
        recipe.trainer,
        modules,
        vae_step,
        batches,
        run_dir,
        identity=identity,
        items_per_batch=lambda b: int(len(b["labels"])),
        dist=dist,
        resume=resume,
    )
    result = trainer.fit()
    run: dict[str, Any] = {
        "recipe_hash": identity.recipe_hash,
        "kind": "generative",
        "data": recipe.data.source,
        "step": result.step,
        "wall_time_s": result.wall_time_s,
        "steps_per_s": result.steps_per_s,
        "metrics": result.metrics,
        "train_images": len(train),
        "labelled_images": int(labelled.sum()),
        "test_images": len(test),
    }
    if dist.is_main:
        if evaluate:
            run["eval"] = _evaluate(recipe, modules["vae"], train, test, run_dir / "eval", run_dir.name)
        (run_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    cleanup_distributed()
    return run


def _evaluate(recipe: GenerativeRecipe, model, train, test, out_dir: Path, name: str) -> dict[str, Any]:
    from training.generative.classifier import train_classifier
    from training.generative.evaluate import evaluate_generator

    e = recipe.evaluation
    classifier = train_classifier(train, epochs=e.classifier_epochs, seed=e.classifier_seed)
    test = test.take(slice(0, e.max_test_images))
    return evaluate_generator(
        model.cpu(),
        classifier,
        test,
        out_dir,
        name=name,
        samples_per_class=e.samples_per_class,
        grid=e.grid,
        iw_samples=e.iw_samples,
        seed=e.seed,
    )


def evaluate_run(recipe: GenerativeRecipe, run_dir: Path | None, out_dir: Path, *, name: str) -> dict[str, Any]:
    """The §6 report of a run's VAE (or, with ``run_dir`` None, of the untrained one)."""
    from training.trainer.rng import seed_everything

    train, test = checked_splits(recipe.data)
    if run_dir is None:
        seed_everything(recipe.trainer.seed)  # the initial weights `toitsu train` starts from
        model = build_model(recipe)
    else:
        recipe, model, _, _ = load_generative_run(run_dir)
    return _evaluate(recipe, model.eval(), train, test, out_dir, name)


# ------------------------------------------------------------------------------ loading


def load_generative_run(run_dir: Path) -> tuple[GenerativeRecipe, VAEBase, int, dict[str, Any]]:
    """(recipe, VAE in eval mode, step, run.json or {}) from a run's latest checkpoint."""
    from training.recipes.config import load_recipe
    from training.trainer.checkpoint import latest_checkpoint, load_checkpoint

    run_dir = Path(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml", schema=GenerativeRecipe)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint")
    state = load_checkpoint(checkpoint)
    model = build_model(recipe)
    model.load_state_dict(state["modules"]["vae"])
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    return recipe, model.eval(), int(state["step"]), run


def generator_provenance(run_dir: Path) -> dict[str, Any]:
    """What a generator card's training provenance records of a run."""
    recipe, _, step, run = load_generative_run(run_dir)
    keys = ("requested_class_accuracy", "fid", "kid", "test_elbo", "test_log_likelihood_iw", "samples_per_class")
    summary = {k: v for k, v in (run.get("eval") or {}).items() if k in keys}
    return {
        "kind": "training",
        "run": str(run_dir),
        "step": step,
        "recipe": (Path(run_dir) / "recipe.yaml").read_text(),
        "config_hash": run.get("recipe_hash"),
        "synthetic": None,
        "model": recipe.model.get("name"),
        "method": ", ".join(f"{k}={v}" for k, v in recipe.model.items()),
        "eval": summary or None,
        "license": "Apache-2.0",
    }
