"""Composing a speaker recipe into a training run and evaluating it (METHODS §1-2).

``build_training`` turns a :class:`SpeakerRecipe` into the trainer's three inputs: the modules
(``encoder`` and, where the method has learnable parts, ``loss``), the step function and the
step-indexed batch dataset. Methods:

- ``gcl`` / ``ap`` — pairs of crops; GCL takes its target matrix from the keys
  (``keys_for_batch``: labelled items share their speaker's key, unlabelled ones have their
  own), so ``sampler.mode`` alone makes a run supervised, semi-supervised or unsupervised;
- ``aam`` — supervised pairs, both crops classified over the training speakers;
- ``meta`` — episodes of K speakers × (S support + Q query), ridge classifier in closed form.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import torch
from torch import nn

from training.recipes.speaker import SpeakerRecipe, build_encoder, file_sha256, manifest_records

if TYPE_CHECKING:
    from training.data.augment import Augmenter

PAIR_METHODS = ("gcl", "ap", "aam")


class _BatchSettings(TypedDict):
    """The arguments both batch datasets (pairs, episodes) take from the recipe."""

    crop_seconds: float
    augment: Augmenter
    seed: int
    rank: int
    steps: int


def _pair_embeddings(modules: Mapping[str, nn.Module], batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor and positive crops through the encoder in one forward: ([N, D], [N, D])."""
    n = batch["anchor"].shape[0]
    lengths = torch.cat([batch["lengths"], batch["lengths"]])
    emb = modules["encoder"](torch.cat([batch["anchor"], batch["positive"]]), lengths).float()
    return emb[:n], emb[n:]


def gcl_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
    from training.methods.generalized_contrastive import keys_for_batch

    anchor, positive = _pair_embeddings(modules, batch)
    return modules["loss"](anchor, positive, keys_for_batch(batch["speakers"], batch["labelled"]))


def ap_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
    anchor, positive = _pair_embeddings(modules, batch)
    return modules["loss"](torch.stack([positive, anchor], dim=1))  # utterance 0 = query


def aam_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
    anchor, positive = _pair_embeddings(modules, batch)
    labels = torch.cat([batch["speakers"], batch["speakers"]])
    return modules["loss"](torch.cat([anchor, positive]), labels)


def meta_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
    k = batch["support"].shape[0]
    waves = torch.cat([batch["support"], batch["query"]])
    lengths = torch.cat([batch["support_lengths"], batch["query_lengths"]])
    emb = modules["encoder"](waves, lengths).float()
    return modules["loss"](
        emb[:k], batch["support_labels"], emb[k:], batch["query_labels"], n_classes=int(batch["speakers"].shape[0])
    )


STEPS: dict[str, Callable] = {"gcl": gcl_step, "ap": ap_step, "aam": aam_step, "meta": meta_step}


# A speaker recipe's method.name → the seed method (training.methods.METHODS) it trains with.
METHOD_KEYS: dict[str, str] = {"gcl": "generalized_contrastive", "meta": "meta_training_sets"}


def build_loss(recipe: SpeakerRecipe, embedding_dim: int, n_speakers: int) -> nn.Module:
    """The loss module of ``recipe.method`` (its other keys are the constructor's arguments)."""
    from training.losses import LOSSES
    from training.methods import METHODS, AngularPrototypicalLoss

    kwargs = dict(recipe.method)
    name = kwargs.pop("name")
    if name in METHOD_KEYS:
        return METHODS[METHOD_KEYS[name]].build(**kwargs)
    if name == "ap":  # the AP baseline: GCL's one-pair-per-speaker case (METHODS §1)
        return AngularPrototypicalLoss(**kwargs)
    if name == "aam":  # the classification baseline: a margin head over the training speakers
        return LOSSES["aam_softmax"](embedding_dim, n_speakers, **kwargs)
    raise ValueError(f"method.name {name!r} is not one of {sorted(STEPS)}")


def build_modules(recipe: SpeakerRecipe, n_speakers: int | None = None) -> dict[str, nn.Module]:
    """``{"encoder", "loss"}`` of the recipe. ``n_speakers`` (training speakers) sizes the AAM head;
    before the data is read a stand-in of 2 still lets every constructor check its arguments."""
    encoder = build_encoder(recipe)
    return {"encoder": encoder, "loss": build_loss(recipe, int(encoder.embedding_dim), n_speakers or 2)}


def build_batches(recipe: SpeakerRecipe, records: Sequence, *, rank: int):
    from training.data.audio_store import AudioStore
    from training.data.augment import Augmenter
    from training.data.speaker_batches import EpisodeBatches, PairBatches

    train = [r for r in records if r.split == "train"]
    store = AudioStore(train, recipe.data.sample_rate, cache=recipe.data.cache_audio)
    augment = Augmenter.from_config(recipe.augment, recipe.data.sample_rate)
    common = _BatchSettings(
        crop_seconds=recipe.sampler.crop_seconds,
        augment=augment,
        seed=recipe.trainer.seed,
        rank=rank,
        steps=recipe.trainer.steps,
    )
    s, method = recipe.sampler, recipe.method["name"]
    if method == "meta":
        return EpisodeBatches(
            train, store, speakers_per_episode=s.speakers_per_episode, support=s.support, query=s.query, **common
        )
    if method == "aam" and s.mode != "supervised":
        raise ValueError("method aam needs sampler.mode supervised")
    return PairBatches(
        train, store, pairs_per_batch=s.pairs_per_batch, mode=s.mode, labelled_fraction=s.labelled_fraction, **common
    )


def items_in(batch: dict[str, Any]) -> int:
    """Training examples in a batch: pairs, or support + query crops."""
    if "anchor" in batch:
        return int(batch["anchor"].shape[0])
    return int(batch["support"].shape[0] + batch["query"].shape[0])


def train_recipe(recipe: SpeakerRecipe, run_dir: Path, *, resume: bool = True, evaluate: bool = True) -> dict[str, Any]:
    """Train, evaluate on held-out speakers and write ``run_dir/run.json``; returns its content."""
    from training.recipes.config import run_identity
    from training.trainer import Trainer
    from training.trainer.distributed import cleanup_distributed, init_distributed
    from training.trainer.rng import seed_everything

    identity = run_identity(recipe)
    dist = init_distributed(recipe.trainer.device)
    records, manifest = manifest_records(recipe.data)
    batches = build_batches(recipe, records, rank=dist.rank)
    seed_everything(recipe.trainer.seed)  # the same initial weights for every method and rank
    modules = build_modules(recipe, len(batches.speakers))
    encoder = modules["encoder"]
    trainer = Trainer(
        recipe.trainer,
        modules,
        STEPS[recipe.method["name"]],
        batches,
        run_dir,
        identity=identity,
        items_per_batch=items_in,
        dist=dist,
        resume=resume,
    )
    result = trainer.fit()
    run = {
        "recipe_hash": identity.recipe_hash,
        "data_manifest": str(manifest),
        "data_manifest_sha256": file_sha256(manifest),
        "step": result.step,
        "wall_time_s": result.wall_time_s,
        "steps_per_s": result.steps_per_s,
        "items_per_s": result.items_per_s,
        "metrics": result.metrics,
        "labelled_speakers": len(getattr(batches, "labelled_speakers", ()) or ()),
        "train_speakers": len(batches.speakers),
    }
    if dist.is_main:
        if evaluate:
            run["eval"] = evaluate_encoder_on_data(encoder, recipe, run_dir / "eval", name=run_dir.name)
        (run_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    cleanup_distributed()
    return run


def evaluate_run(recipe: SpeakerRecipe, run_dir: Path | None, out_dir: Path, *, name: str) -> dict[str, Any]:
    """The EER/minDCF report of a run's encoder (``evaluate_encoder_on_data``); with ``run_dir``
    None, of the recipe's untrained encoder, seeded as ``train_recipe`` seeds it."""
    from training.recipes.speaker import load_trained_encoder
    from training.trainer.rng import seed_everything

    encoder: nn.Module
    if run_dir is None:
        seed_everything(recipe.trainer.seed)  # the initial weights `toitsu train` starts from
        encoder = build_encoder(recipe).eval()
    else:
        encoder = load_trained_encoder(run_dir).encoder
    return evaluate_encoder_on_data(encoder, recipe, out_dir, name=name)


def evaluate_encoder_on_data(encoder: nn.Module, recipe: SpeakerRecipe, out_dir: Path, *, name: str) -> dict[str, Any]:
    """EER/minDCF/DET on the recipe's trial list, or on all pairs of held-out utterances."""
    from training.evaluation.speaker_eval import TrialLike, evaluate_encoder, pair_trials

    records, _ = manifest_records(recipe.data)
    trials: Sequence[TrialLike]
    if recipe.data.trials:
        from training.data.voxceleb import read_trial_list

        trials = read_trial_list(Path(recipe.data.trials), Path(recipe.data.trials_root or "."))
    else:
        trials = pair_trials(records, "heldout")
    if not trials:
        raise ValueError("no evaluation trials: the manifest has no 'heldout' split and data.trials is unset")
    trials = trials[: recipe.data.max_eval_trials]
    device = next(encoder.parameters()).device
    started = time.perf_counter()
    report = evaluate_encoder(encoder, trials, out_dir, name=name, sample_rate=recipe.data.sample_rate, device=device)
    report["eval_seconds"] = time.perf_counter() - started
    return report
