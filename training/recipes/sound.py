"""Sound recipes (METHODS §4): formula pre-training and k-shot fine-tuning of a sound encoder.

A sound recipe is ``kind: sound`` (``toitsu train`` reads that key; speaker recipes leave it out)
and trains ``encoder`` (``training.models.SOUND_ENCODERS``) + ``head`` (a Linear classifier
over the data's classes, cross-entropy; the head never reaches the exported graph)::

    toitsu train recipes/sound/pretrain-d1.yaml                     # data.formula: D1/D2/D3/all
    toitsu train recipes/sound/finetune-base.yaml init_from=runs/pretrain-d1 data.few_shot.k=2

Data is either a formula class set (``data.formula``, fresh clips every step, nothing on disk)
or a manifest / synthetic sound corpus split by ``data.few_shot`` into k labelled clips per
class from the training folds and the whole test fold (``training.data.few_shot``).
``init_from`` names a finished run (usually a pre-training one) whose encoder weights start this
run; the head is always new, so "from scratch" and "pre-trained" fine-tunes differ in nothing
else. ``data.sample_rate`` and ``data.clip_seconds`` are shared by both kinds of data, so that a
pre-training recipe and the fine-tuning recipe it feeds agree by construction.

Runs write into ``run_dir``: ``recipe.yaml``, ``checkpoints/``, ``metrics.jsonl``, ``tb/``,
``run.json`` (provenance and result) and ``eval/`` (report.json, confusion.png): accuracy on the
test fold when fine-tuning, on fresh formula batches (another seed) when pre-training
(``training.recipes.sound_eval``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from training.recipes.speaker import TrainedEncoder, file_sha256
from training.trainer.config import TrainerConfig

if TYPE_CHECKING:
    from training.methods.closed_form_pretraining import FormulaDataset
    from training.models import Encoder

MIX_PREFIX = "formula/"  # class names of the formula clips a mixed recipe adds
EVAL_SEED_OFFSET = 1_000_003  # evaluation / precise-BN batches: a seed no training step uses
PRECISE_BN_FILE = "precise_bn.pt"


@dataclass(frozen=True)
class FormulaSection:
    """A formula class set (a ``training.methods.closed_form_pretraining.FORMULA_DATASETS`` key) and
    its constructor arguments (METHODS §4)."""

    dataset: Literal["d1", "d2", "d3", "all"] = "all"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SoundCorpus:
    """``training.data.sound_corpus.build_sound_corpus`` arguments (built once, then cached)."""

    out: str = "build/sound-corpus"
    clips_per_class: int = 20
    clip_seconds: float = 2.0
    n_folds: int = 5
    seed: int = 0
    # Real-use conditions (training.data.real_use.RealUse fields; {} = its defaults): the corpus
    # is rendered through pitch/tempo/room/noise/band limits. null: the plain sound corpus.
    real_use: dict[str, Any] | None = None


@dataclass(frozen=True)
class FewShot:
    """k labelled clips per class from the folds other than ``test_fold`` (draw ``draw``);
    ``k: null`` takes every training clip. The split depends on (test_fold, k, draw, seed) only."""

    test_fold: int = 1
    k: int | None = 1
    draw: int = 0
    seed: int = 0


@dataclass(frozen=True)
class SoundData:
    """Exactly one of ``formula`` (pre-training), ``manifest`` or ``synthetic`` (with ``few_shot``).

    clip_seconds: training clip (formula) / crop (corpus) length; batch_size: clips per step;
    eval_batches: fresh formula batches the pre-training accuracy is measured on.
    """

    formula: FormulaSection | None = None
    manifest: str | None = None
    synthetic: SoundCorpus | None = None
    few_shot: FewShot | None = None
    sample_rate: int = 16000
    clip_seconds: float = 2.0
    batch_size: int = 32
    cache_audio: bool = True
    eval_batches: int = 4
    # A corpus recipe may mix formula clips into every batch (``formula_share`` of it, labelled
    # after the corpus classes), so the encoder keeps METHODS §4's formula classes while it
    # learns everyday sounds (training.data.mixed_batches).
    mix_formula: FormulaSection | None = None
    formula_share: float = 0.5

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.formula, self.manifest, self.synthetic)) != 1:
            raise ValueError("set exactly one of data.formula, data.manifest and data.synthetic")
        if (self.formula is None) != (self.few_shot is not None):
            raise ValueError("data.few_shot goes with data.manifest or data.synthetic, and only with them")
        if self.mix_formula is not None and (self.formula is not None or not 0 < self.formula_share < 1):
            raise ValueError("data.mix_formula goes with a corpus, and data.formula_share in (0, 1)")


@dataclass(frozen=True)
class SoundRecipe:
    trainer: TrainerConfig
    data: SoundData
    model: dict[str, Any]  # {name: sound_cnn, ...constructor arguments}
    kind: Literal["sound"] = "sound"
    init_from: str | None = None  # a run folder whose encoder weights initialise this run
    augment: dict[str, Any] | None = None  # Augmenter fields for corpus crops; null = none
    precise_bn: int = 0  # batches to re-estimate BN statistics on after training (see precise_bn)
    export_name: str = "toitsu-sound"


@dataclass
class SoundRun:
    """A run's modules (eval mode) as ``load_sound_run`` restores them."""

    recipe: SoundRecipe
    encoder: Encoder
    head: nn.Linear
    step: int
    classes: list[str]
    run: dict[str, Any]  # run.json ({} while the run has none)


# ------------------------------------------------------------------------------ building


def build_sound_model(recipe: SoundRecipe) -> Encoder:
    """The recipe's encoder; its front end takes ``data.sample_rate`` unless the model sets it."""
    from training.models import build_sound_encoder

    kwargs = dict(recipe.model)
    name = kwargs.pop("name")
    frontend = dict(kwargs.pop("frontend", None) or {})
    if frontend.setdefault("sample_rate", recipe.data.sample_rate) != recipe.data.sample_rate:
        raise ValueError(
            f"model.frontend.sample_rate={frontend['sample_rate']} disagrees with "
            f"data.sample_rate={recipe.data.sample_rate}"
        )
    return build_sound_encoder(name, frontend=frontend, **kwargs)


def formula_dataset(section: FormulaSection) -> FormulaDataset:
    """The class set a pre-training recipe's ``data.formula`` names (METHODS §4)."""
    from training.methods import METHODS

    return METHODS["closed_form_pretraining"].build(section.dataset, **section.params)


def corpus_records(data: SoundData) -> tuple[list, Path]:
    """The corpus's manifest records and the manifest path (building a synthetic corpus if asked)."""
    from training.data.manifest import read_manifest

    if data.synthetic is not None:
        from training.data.sound_corpus import build_sound_corpus

        s = data.synthetic
        if s.real_use is not None:
            from training.data.real_use import RealUse, build_real_use_corpus
            from training.data.sound_corpus import SOUND_CLASSES

            path = build_real_use_corpus(
                s.out,
                SOUND_CLASSES,
                RealUse.from_config(s.real_use),
                clips_per_class=s.clips_per_class,
                clip_seconds=s.clip_seconds,
                sample_rate=data.sample_rate,
                n_folds=s.n_folds,
                seed=s.seed,
            )
        else:
            path = Path(
                build_sound_corpus(s.out, s.clips_per_class, s.clip_seconds, data.sample_rate, s.n_folds, s.seed)
            )
    elif data.manifest is not None:
        path = Path(data.manifest)
    else:
        raise ValueError("a formula recipe has no corpus (data.manifest or data.synthetic)")
    return read_manifest(path), path


def few_shot_split(data: SoundData) -> tuple[list, list, list[str], Path]:
    """(train records, test records, class names, manifest path) of a corpus recipe."""
    from training.data.few_shot import class_list, kshot_split

    records, path = corpus_records(data)
    f = data.few_shot
    assert f is not None  # SoundData: a corpus recipe has its few_shot section
    train, test = kshot_split(records, test_fold=f.test_fold, k=f.k, draw=f.draw, seed=f.seed)
    if not train or not test:
        raise ValueError(f"few_shot {f}: {len(train)} training and {len(test)} test clips in {path}")
    classes = class_list(records)
    if data.mix_formula is not None:  # the formula classes follow the corpus's in the head
        classes += [f"{MIX_PREFIX}{c}" for c in formula_dataset(data.mix_formula).class_names]
    return list(train), list(test), classes, path


def build_batches(recipe: SoundRecipe, *, rank: int, train: Sequence = (), classes: Sequence[str] = ()):
    """Step-indexed batches ``{"waveform" [B, T], "lengths" [B], "labels" [B]}`` for the trainer."""
    d, t = recipe.data, recipe.trainer
    if d.formula is not None:
        from training.data.formula_batches import FormulaBatches

        return FormulaBatches(
            formula_dataset(d.formula),
            batch_size=d.batch_size,
            clip_seconds=d.clip_seconds,
            sample_rate=d.sample_rate,
            seed=t.seed,
            rank=rank,
            steps=t.steps,
        )
    from training.data.audio_store import AudioStore
    from training.data.augment import Augmenter
    from training.data.few_shot import ClipBatches

    store = AudioStore(train, d.sample_rate, cache=d.cache_audio)
    augment = Augmenter.from_config(recipe.augment, d.sample_rate)
    corpus_classes = [c for c in classes if not c.startswith(MIX_PREFIX)]
    n_formula = 0 if d.mix_formula is None else round(d.batch_size * d.formula_share)
    clips = ClipBatches(
        train,
        store,
        batch_size=d.batch_size - n_formula,
        clip_seconds=d.clip_seconds,
        augment=augment,
        seed=t.seed,
        rank=rank,
        steps=t.steps,
        classes=corpus_classes,
    )
    if d.mix_formula is None:
        return clips
    from training.data.formula_batches import FormulaBatches
    from training.data.mixed_batches import MixedBatches

    formula = FormulaBatches(
        formula_dataset(d.mix_formula),
        batch_size=n_formula,
        clip_seconds=d.clip_seconds,
        sample_rate=d.sample_rate,
        seed=t.seed + 1,  # not the corpus batches' stream
        rank=rank,
        steps=t.steps,
    )
    return MixedBatches(clips, formula, label_offset=len(corpus_classes))


def build_modules(recipe: SoundRecipe, n_classes: int | None = None) -> dict[str, nn.Module]:
    """``{"encoder", "head"}``: the recipe's encoder and a Linear head over ``n_classes``. Without
    ``n_classes`` a formula recipe counts its class set (building it checks ``data.formula``) and
    a corpus recipe, whose classes the data decides, takes a stand-in of 2."""
    if n_classes is None:
        n_classes = formula_dataset(recipe.data.formula).n_classes if recipe.data.formula else 2
    encoder = build_sound_model(recipe)
    return {"encoder": encoder, "head": nn.Linear(int(encoder.embedding_dim), n_classes)}


def initialise_from(encoder: nn.Module, recipe: SoundRecipe) -> dict[str, Any]:
    """Load ``recipe.init_from``'s encoder weights into ``encoder``; returns their provenance."""
    from training.recipes.config import load_recipe
    from training.trainer.checkpoint import latest_checkpoint, load_checkpoint

    if recipe.init_from is None:
        raise ValueError("the recipe names no init_from run")
    source = Path(recipe.init_from)
    checkpoint = latest_checkpoint(source)
    if checkpoint is None:
        raise FileNotFoundError(f"init_from: {source} has no checkpoint")
    parent = load_recipe(source / "recipe.yaml", schema=SoundRecipe)
    if parent.model != recipe.model or parent.data.sample_rate != recipe.data.sample_rate:
        raise ValueError(
            f"init_from: {source} trained model {parent.model} at {parent.data.sample_rate} Hz, "
            f"this recipe asks for {recipe.model} at {recipe.data.sample_rate} Hz"
        )
    state = load_checkpoint(checkpoint)
    encoder.load_state_dict(state["modules"]["encoder"])
    return {
        "run": str(source),
        "step": int(state["step"]),
        "recipe_hash": state.get("recipe_hash"),
        "data": parent.data.formula.dataset if parent.data.formula else None,
    }


# --------------------------------------------------------------------------- step and run


def classify_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
    """Cross-entropy of the head's logits over the encoder's embeddings; logs accuracy."""
    from training.losses.result import LossOutput

    logits = modules["head"](modules["encoder"](batch["waveform"], batch["lengths"]).float())
    loss = nn.functional.cross_entropy(logits, batch["labels"])
    with torch.no_grad():
        accuracy = (logits.argmax(1) == batch["labels"]).float().mean()
    return LossOutput(loss, {"accuracy": float(accuracy)})


def train_sound_recipe(
    recipe: SoundRecipe, run_dir: Path, *, resume: bool = True, evaluate: bool = True
) -> dict[str, Any]:
    """Train, evaluate (test fold or fresh formula batches) and write ``run_dir/run.json``."""
    from training.recipes.config import run_identity
    from training.recipes.sound_eval import evaluate_sound
    from training.trainer import Trainer
    from training.trainer.distributed import cleanup_distributed, init_distributed
    from training.trainer.rng import seed_everything

    run_dir, identity = Path(run_dir), run_identity(recipe)
    dist = init_distributed(recipe.trainer.device)
    run: dict[str, Any] = {"recipe_hash": identity.recipe_hash, "kind": "sound"}
    if recipe.data.formula is not None:
        dataset = formula_dataset(recipe.data.formula)
        train: list[Any] = []
        test: list[Any] = []  # formula recipes draw fresh clips
        classes = list(dataset.class_names)
        run.update(data_manifest=None, formula=recipe.data.formula.dataset)
    else:
        train, test, classes, manifest = few_shot_split(recipe.data)
        run.update(
            data_manifest=str(manifest),
            data_manifest_sha256=file_sha256(manifest),
            train_clips=len(train),
            test_clips=len(test),
        )
    batches = build_batches(recipe, rank=dist.rank, train=train, classes=classes)
    seed_everything(recipe.trainer.seed)  # the same initial weights whatever init_from says
    modules = build_modules(recipe, len(classes))
    encoder, head = modules["encoder"], modules["head"]
    if recipe.init_from:
        run["init_from"] = initialise_from(encoder, recipe)
    trainer = Trainer(
        recipe.trainer,
        modules,
        classify_step,
        batches,
        run_dir,
        identity=identity,
        items_per_batch=lambda b: int(b["labels"].shape[0]),
        dist=dist,
        resume=resume,
    )
    result = trainer.fit()
    run.update(
        step=result.step,
        wall_time_s=result.wall_time_s,
        steps_per_s=result.steps_per_s,
        items_per_s=result.items_per_s,
        metrics=result.metrics,
        classes=classes,
    )
    if dist.is_main:
        precise_bn(recipe, encoder, run_dir, result.step, train=train, classes=classes)
        if evaluate:
            run["eval"] = evaluate_sound(
                recipe, encoder, head, run_dir / "eval", name=run_dir.name, test=test, classes=classes
            )
        (run_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    cleanup_distributed()
    return run


@torch.no_grad()
def precise_bn(
    recipe: SoundRecipe, encoder: nn.Module, run_dir: Path, step: int, *, train: Sequence, classes: Sequence[str]
) -> None:
    """Re-estimate the encoder's BatchNorm statistics as plain averages over ``recipe.precise_bn``
    batches of un-augmented training clips ("precise BN", Wu and Johnson, 2021) and save them as
    ``run_dir/precise_bn.pt``, which ``load_sound_run`` applies. After a few dozen fine-tuning
    steps the running averages (momentum 0.1) still remember the first, very different weights,
    which would make eval mode predict from stale statistics — a run from scratch worst of all.
    """
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if recipe.precise_bn < 1 or not norms:
        return
    trainer = dataclasses.replace(recipe.trainer, steps=recipe.precise_bn, seed=recipe.trainer.seed + EVAL_SEED_OFFSET)
    batches = build_batches(
        dataclasses.replace(recipe, augment=None, trainer=trainer), rank=0, train=train, classes=classes
    )
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    device = next(encoder.parameters()).device
    encoder.train()
    for i in range(len(batches)):
        encoder(batches[i]["waveform"].to(device), batches[i]["lengths"].to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    encoder.eval()
    names = ("running_mean", "running_var", "num_batches_tracked")
    buffers = {k: v.cpu() for k, v in encoder.state_dict().items() if k.rsplit(".", 1)[-1] in names}
    torch.save({"step": step, "batches": recipe.precise_bn, "buffers": buffers}, run_dir / PRECISE_BN_FILE)


# ------------------------------------------------------------------------------ loading


def load_sound_run(run_dir: Path) -> SoundRun:
    """A run's encoder and head from its latest checkpoint, in eval mode."""
    from training.recipes.config import load_recipe
    from training.trainer.checkpoint import latest_checkpoint, load_checkpoint

    run_dir = Path(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml", schema=SoundRecipe)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint")
    state = load_checkpoint(checkpoint)
    encoder = build_sound_model(recipe)
    encoder.load_state_dict(state["modules"]["encoder"])
    bn_path = run_dir / PRECISE_BN_FILE
    if bn_path.exists() and (saved := torch.load(bn_path, weights_only=True))["step"] == state["step"]:
        encoder.load_state_dict({**encoder.state_dict(), **saved["buffers"]})
    weight = state["modules"]["head"]["weight"]
    head = nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict(state["modules"]["head"])
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    classes = run.get("classes") or [str(i) for i in range(weight.shape[0])]
    return SoundRun(recipe, encoder.eval(), head.eval(), int(state["step"]), list(classes), run)


def load_trained_sound_encoder(run_dir: Path) -> TrainedEncoder:
    """What ``toitsu export`` needs from a sound run: the encoder (eval mode) and its provenance."""
    run_dir = Path(run_dir)
    loaded = load_sound_run(run_dir)
    recipe, run = loaded.recipe, loaded.run
    formula, init_from = recipe.data.formula or recipe.data.mix_formula, run.get("init_from")
    summary = {
        k: v
        for k, v in (run.get("eval") or {}).items()
        if k in ("data", "clips", "classes", "accuracy", "balanced_accuracy", "few_shot")
    }
    provenance = {
        "kind": "training",
        "run": str(run_dir),
        "step": loaded.step,
        "recipe": (run_dir / "recipe.yaml").read_text(),
        "config_hash": run.get("recipe_hash"),
        "data_manifest": run.get("data_manifest"),
        "data_manifest_sha256": run.get("data_manifest_sha256"),
        "formula": formula.dataset if formula else None,
        "init_from": init_from.get("run") if isinstance(init_from, dict) else init_from,
        "model": recipe.model.get("name"),
        "method": _method(recipe),
        "classes": loaded.classes,
        "eval": summary or None,
        "license": "Apache-2.0",
    }
    return TrainedEncoder(
        loaded.encoder,
        recipe.data.sample_rate,
        int(loaded.encoder.embedding_dim),
        loaded.step,
        recipe.export_name,
        provenance,
    )


def _method(recipe: SoundRecipe) -> str:
    """How a run trained its encoder, in the card's words."""
    if recipe.data.formula is not None:
        return "formula pre-training"
    if recipe.data.mix_formula is not None:
        return f"supervised training on the corpus mixed with formula classes {recipe.data.mix_formula.dataset}"
    return "supervised fine-tuning"
