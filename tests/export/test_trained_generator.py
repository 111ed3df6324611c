"""The generator card: a tiny generative run exported with parity; a graph that disagrees with the
module is refused; the card kind is strict and the older kinds still parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from contracts.card import CardError, GeneratorCard, load_card, parse_card
from export.parity import ParityError
from export.trained_generator import export_generator, export_generator_run, generator_parity
from training.recipes.config import build_recipe
from training.recipes.generative import GenerativeRecipe, load_generative_run, train_generative_recipe

TINY = {
    "kind": "generative",
    "model": {"name": "cvae", "latent": 3, "hidden": 16},
    "data": {"batch_size": 32},
    "trainer": {"steps": 4, "steps_per_epoch": 4, "checkpoint_every": 0, "progress": False, "tensorboard": False},
    "export_name": "tiny-cvae",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("gen") / "run"
    train_generative_recipe(build_recipe(TINY, GenerativeRecipe), run, evaluate=False)
    return run


def test_export_publishes_a_generator_card_with_parity(run_dir: Path, tmp_path: Path) -> None:
    version = export_generator_run(run_dir, tmp_path / "models")
    card = load_card(version)
    assert isinstance(card, GeneratorCard) and card.modality == "generator"
    assert [t.name for t in card.inputs] == ["noise", "label"] and card.outputs[0].shape == [-1, 8, 8]
    assert card.generator.classes == 10 and card.generator.latent_dim == 3
    assert card.parity is not None and card.parity.checks[0].cases == 3
    assert card.parity.checks[0].max_abs_diff <= 1e-5
    assert card.provenance.kind == "training" and card.provenance.model == "cvae"
    assert (tmp_path / "models/tiny-cvae/config.pbtxt").is_file()


def test_a_graph_that_differs_from_the_module_is_refused(run_dir: Path, tmp_path: Path) -> None:
    _, vae, _, _ = load_generative_run(run_dir)
    path = export_generator(vae, tmp_path / "model.onnx")
    assert generator_parity(vae, path).max_abs_diff <= 1e-5
    with torch.no_grad():
        vae.decoder[-1].bias.add_(0.5)  # the module moved on after export
    with pytest.raises(ParityError, match="generator: max abs diff"):
        generator_parity(vae, path)


def test_the_generator_card_is_strict(run_dir: Path, tmp_path: Path) -> None:
    version = export_generator_run(run_dir, tmp_path / "models", name="strict")
    raw = json.loads((version / "card.json").read_text())
    assert isinstance(parse_card(raw), GeneratorCard)
    with pytest.raises(CardError, match="generator.temperature"):
        parse_card({**raw, "generator": {**raw["generator"], "temperature": 1.0}})
    with pytest.raises(CardError, match="class_names"):
        parse_card({**raw, "generator": {**raw["generator"], "class_names": ["a", "b"]}})
