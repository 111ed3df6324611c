"""Sound recipes (METHODS §4): the shipped ones load strictly, a tiny formula pre-training run
learns, and a k-shot fine-tune initialised from it starts from its encoder weights."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from training.recipes.config import RecipeError, build_recipe, load_recipe
from training.recipes.sound import SoundRecipe, build_sound_model, initialise_from, load_sound_run, train_sound_recipe
from training.trainer.checkpoint import latest_checkpoint, load_checkpoint

RECIPES = sorted((REPO / "recipes" / "sound").glob("*.yaml"))
TINY_MODEL = {
    "name": "sound_cnn",
    "n_mels": 24,
    "channels": [4, 8, 8, 16],
    "embedding_dim": 16,
    "dropout": 0.0,
    "frontend": {"n_mels": 24},
}
TRAINER = {
    "steps_per_epoch": 100,
    "lr": 0.003,
    "lr_decay": 1.0,
    "log_every": 4,
    "checkpoint_every": 0,
    "num_workers": 0,
    "progress": False,
    "tensorboard": False,
    "seed": 0,
}


def _tiny(data: dict, steps: int, **top) -> SoundRecipe:
    raw = {"kind": "sound", "model": TINY_MODEL, "trainer": {**TRAINER, "steps": steps}, "data": data, **top}
    return build_recipe(raw, SoundRecipe)


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("sound") / "pretrain-d1"
    data = {
        "formula": {"dataset": "d1", "params": {"n_betas": 4}},
        "clip_seconds": 0.5,
        "batch_size": 16,
        "eval_batches": 2,
    }
    return run_dir, train_sound_recipe(_tiny(data, steps=24), run_dir)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sound-corpus")
    return {"out": str(out), "clips_per_class": 3, "clip_seconds": 0.5, "n_folds": 3, "seed": 0}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads(path: Path):
    recipe = load_recipe(path, schema=SoundRecipe)
    assert recipe.kind == "sound" and recipe.model["name"] == "sound_cnn"
    assert (recipe.data.formula is None) == (recipe.data.few_shot is not None)


def test_fine_tuning_recipes_can_start_from_their_pre_training_recipes():
    def load(name: str) -> SoundRecipe:
        return load_recipe(REPO / "recipes/sound" / name, schema=SoundRecipe)

    finetune = load("finetune-base.yaml")
    for d in ("d1", "d2", "d3", "all"):
        pretrain = load(f"pretrain-{d}.yaml")
        assert pretrain.data.formula.dataset == d and pretrain.model == finetune.model
        assert (pretrain.data.sample_rate, pretrain.data.clip_seconds) == (16000, finetune.data.clip_seconds)
    assert load("pretrain-all-gpu.yaml").model == load("esc50-finetune.yaml").model


def test_a_misspelt_key_or_inconsistent_data_is_an_error(tmp_path):
    base = REPO / "recipes/sound/finetune-base.yaml"
    with pytest.raises(RecipeError, match="data.few_shot.kk"):
        load_recipe(base, ["data.few_shot.kk=2"], schema=SoundRecipe)
    with pytest.raises(RecipeError, match="exactly one of data.formula, data.manifest and data.synthetic"):
        load_recipe(base, ["data.manifest=x.jsonl"], schema=SoundRecipe)
    with pytest.raises(RecipeError, match="few_shot goes with"):
        load_recipe(REPO / "recipes/sound/pretrain-d1.yaml", ["data.few_shot.k=1"], schema=SoundRecipe)
    with pytest.raises(RecipeError, match="data.formula.dataset"):
        load_recipe(REPO / "recipes/sound/pretrain-d1.yaml", ["data.formula.dataset=d4"], schema=SoundRecipe)


def test_formula_pre_training_learns_and_reports_accuracy(pretrained):
    run_dir, run = pretrained
    losses = _losses(run_dir)
    assert run["step"] == 24 and losses[-1] < 0.8 * losses[0]
    assert run["formula"] == "d1" and len(run["classes"]) == 4
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    assert report == run["eval"] and report["clips"] == 32 and report["accuracy"] > 0.4  # chance: 0.25
    assert (run_dir / "eval" / "confusion.png").stat().st_size > 0


def test_init_from_loads_the_pre_trained_encoder_and_not_its_head(pretrained, corpus):
    run_dir, _ = pretrained
    recipe = _tiny(
        {"synthetic": corpus, "few_shot": {"test_fold": 1, "k": 1}, "clip_seconds": 0.5, "batch_size": 8},
        steps=4,
        init_from=str(run_dir),
    )
    saved = load_checkpoint(latest_checkpoint(run_dir))["modules"]["encoder"]
    torch.manual_seed(0)
    encoder = build_sound_model(recipe)
    assert any(not torch.equal(v, saved[k]) for k, v in encoder.state_dict().items())  # scratch differs
    provenance = initialise_from(encoder, recipe)
    assert all(torch.equal(v, saved[k]) for k, v in encoder.state_dict().items())
    assert provenance["step"] == 24 and provenance["data"] == "d1"
    wider = dataclasses.replace(recipe, model={**TINY_MODEL, "embedding_dim": 8})
    with pytest.raises(ValueError, match="init_from"):
        initialise_from(build_sound_model(wider), wider)


def test_k_shot_fine_tuning_from_a_pre_training_run(pretrained, corpus, tmp_path):
    pretrain_dir, _ = pretrained
    recipe = _tiny(
        {"synthetic": corpus, "few_shot": {"test_fold": 2, "k": 2, "draw": 1}, "clip_seconds": 0.5, "batch_size": 12},
        steps=16,
        init_from=str(pretrain_dir),
        augment={"noise_p": 0.5, "reverb_p": 0.0, "speed_p": 0.0, "bandpass_p": 0.0},
        precise_bn=2,
    )
    run_dir = tmp_path / "finetune"
    run = train_sound_recipe(recipe, run_dir)
    losses = _losses(run_dir)
    assert losses[-1] < losses[0]
    assert run["train_clips"] == 12 * 2 and run["test_clips"] == 12 and run["init_from"]["run"] == str(pretrain_dir)
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    assert report["few_shot"] == {"test_fold": 2, "k": 2, "draw": 1} and report["clips"] == 12
    assert 0.0 <= report["accuracy"] <= 1.0 and len(report["confusion"]) == 12
    assert sum(map(sum, report["confusion"])) == 12 and (run_dir / "eval" / "confusion.png").exists()
    loaded = load_sound_run(run_dir)
    assert loaded.step == 16 and loaded.classes == run["classes"] and loaded.head.out_features == 12
    # Precise BN: the statistics re-estimated after training replace the running averages.
    precise = torch.load(run_dir / "precise_bn.pt", weights_only=True)["buffers"]
    running = load_checkpoint(latest_checkpoint(run_dir))["modules"]["encoder"]
    state = loaded.encoder.state_dict()
    assert precise and all(torch.equal(state[k], v) for k, v in precise.items())
    assert not torch.equal(precise["input_bn.running_mean"], running["input_bn.running_mean"])


def test_toitsu_eval_of_a_sound_run(pretrained, tmp_path, capsys):
    from toitsu.commands.train import evaluate

    run_dir, run = pretrained
    args = argparse.Namespace(target=run_dir, overrides=[], untrained=False, out=tmp_path / "eval", json=True)
    assert evaluate(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(run["eval"]["accuracy"])  # same seeds, same weights


def test_the_everyday_mix_recipe_trains_from_the_formula_run_on_both_label_sets(pretrained, tmp_path):
    """The default sound model's second stage (recipes/sound/everyday-mix.yaml) at a tiny size:
    real-use corpus + formula clips in every batch, the head over both class sets."""
    from contracts.card_sections import TrainingProvenance
    from training.data.formula_batches import FormulaBatches
    from training.recipes.sound import build_batches, few_shot_split, formula_dataset, load_trained_sound_encoder

    shipped = load_recipe(REPO / "recipes/sound/everyday-mix.yaml", schema=SoundRecipe)
    assert shipped.data.mix_formula.dataset == "all" and shipped.data.synthetic.real_use == {}
    assert shipped.model == load_recipe(REPO / "recipes/sound/pretrain-all.yaml", schema=SoundRecipe).model
    pretrain_dir, _ = pretrained
    formula = {"dataset": "d1", "params": {"n_betas": 4}}
    corpus = {"out": str(tmp_path / "corpus"), "clips_per_class": 3, "clip_seconds": 0.5, "n_folds": 3, "real_use": {}}
    data = {
        "synthetic": corpus,
        "few_shot": {"test_fold": 1, "k": None},
        "mix_formula": formula,
        "formula_share": 0.5,
        "clip_seconds": 0.5,
        "batch_size": 8,
    }
    recipe = _tiny(data, steps=3, init_from=str(pretrain_dir), augment={"reverb_p": 0.5})
    run = train_sound_recipe(recipe, tmp_path / "mix")
    n_formula = len(formula_dataset(recipe.data.mix_formula).class_names)
    assert n_formula == 4 and len(run["classes"]) == 12 + 4
    assert run["classes"][12:] == [f"formula/{c}" for c in formula_dataset(recipe.data.mix_formula).class_names]
    assert run["init_from"]["run"] == str(pretrain_dir)

    train, _, classes, _ = few_shot_split(recipe.data)
    batch = build_batches(recipe, rank=0, train=train, classes=classes)[1]
    alone = FormulaBatches(
        formula_dataset(recipe.data.mix_formula), batch_size=4, clip_seconds=0.5, sample_rate=16000, seed=1, steps=3
    )[1]
    assert batch["waveform"].shape == (8, 8000) and bool((batch["labels"][:4] < 12).all())
    assert torch.equal(batch["labels"][4:], alone["labels"] + 12)
    assert torch.equal(batch["waveform"][4:], alone["waveform"])

    trained = load_trained_sound_encoder(tmp_path / "mix")
    provenance = TrainingProvenance(**trained.provenance)  # the card's schema accepts it
    assert provenance.init_from == str(pretrain_dir) and provenance.formula == "d1"
    assert "mixed with formula classes d1" in (provenance.method or "")
    with pytest.raises(RecipeError, match="mix_formula goes with a corpus"):
        load_recipe(REPO / "recipes/sound/everyday-mix.yaml", ["data.formula_share=1.0"], schema=SoundRecipe)
