"""Generative recipes (METHODS §6): strict loading, a tiny run through `toitsu train` and `toitsu
eval` (report and one PNG grid per class), and the published generator through `toitsu export`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO
from training.recipes.config import RecipeError, build_recipe, load_recipe
from training.recipes.generative import GenerativeRecipe
from training.recipes.kinds import load_kind_recipe

TINY = {
    "kind": "generative",
    "model": {"name": "label_prior", "latent": 4, "hidden": 32},
    "data": {"batch_size": 32},
    "evaluation": {"samples_per_class": 10, "grid": 2, "iw_samples": 4, "classifier_epochs": 3},
    "trainer": {"steps": 30, "steps_per_epoch": 30, "log_every": 10, "checkpoint_every": 0, "tensorboard": False},
    "export_name": "tiny-generator",
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny MLPs: a second thread only contends on a shared machine
    yield
    torch.set_num_threads(before)


def test_shipped_recipes_load_and_bad_ones_are_errors(tmp_path: Path) -> None:
    lp = load_recipe(REPO / "recipes/generative/digits-label-prior.yaml", schema=GenerativeRecipe)
    cvae = load_recipe(REPO / "recipes/generative/digits-cvae.yaml", schema=GenerativeRecipe)
    assert (lp.model["name"], cvae.model["name"]) == ("label_prior", "cvae")
    assert (lp.data, lp.trainer, lp.evaluation) == (cvae.data, cvae.trainer, cvae.evaluation)
    with pytest.raises(RecipeError, match="its modules do not build: .*latnt"):
        load_kind_recipe(REPO / "recipes/generative/digits-cvae.yaml", ["model.latnt=3"], check=True)
    with pytest.raises(RecipeError, match="evaluation.samples: unknown key"):
        build_recipe({**TINY, "evaluation": {"samples": 3}}, GenerativeRecipe)
    with pytest.raises(RecipeError, match="labelled_fraction < 1 needs model.name m2"):
        build_recipe({**TINY, "data": {"labelled_fraction": 0.5}}, GenerativeRecipe)
    with pytest.raises(RecipeError, match="data.path"):
        build_recipe({**TINY, "data": {"source": "idx"}}, GenerativeRecipe)


def test_train_eval_export_through_the_cli(tmp_path: Path, capsys) -> None:
    from toitsu.commands.train import evaluate, export, train

    recipe_path = tmp_path / "tiny.yaml"
    recipe_path.write_text(json.dumps(TINY))  # JSON is YAML
    run_dir = tmp_path / "run"
    args = argparse.Namespace(recipe=recipe_path, overrides=[], run_dir=run_dir, no_resume=False, no_eval=False)
    assert train(args) == 0
    assert "requested-class accuracy" in capsys.readouterr().out
    run = json.loads((run_dir / "run.json").read_text())
    assert run["kind"] == "generative" and run["step"] == 30
    losses = [
        json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in line
    ]
    assert losses[-1] < losses[0]

    out = tmp_path / "eval"
    assert evaluate(argparse.Namespace(target=run_dir, overrides=[], untrained=False, out=out, json=True)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["grids"] == [f"class-{c}.png" for c in range(10)]
    for name in report["grids"]:
        with Image.open(out / name) as picture:  # 2×2 tiles of 8×8 with 1-pixel borders, ×4
            assert picture.size == ((2 * 9 + 1) * 4, (2 * 9 + 1) * 4) and picture.mode == "L"
    assert 0.0 <= report["requested_class_accuracy"] <= 1.0 and report["fid"] >= 0.0
    assert report["test_elbo"] < report["test_log_likelihood_iw"] < 0

    models = tmp_path / "models"
    ns = argparse.Namespace(run_dir=run_dir, models=models, work=tmp_path / "build", name=None, format="onnx")
    assert export(ns) == 0
    from contracts.card import GeneratorCard, load_card

    card = load_card(models / "tiny-generator" / "1")
    assert isinstance(card, GeneratorCard) and card.generator.latent_dim == 4 and card.generator.classes == 10
    assert card.parity is not None and card.parity.checks[0].max_abs_diff <= 1e-5
    # The published graph generates what the run's model generates.
    import onnxruntime as ort

    from training.recipes.generative import load_generative_run

    _, vae, _, _ = load_generative_run(run_dir)
    noise, label = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), np.arange(5, dtype=np.int64)
    got = ort.InferenceSession(str(models / "tiny-generator/1/model.onnx")).run(None, {"noise": noise, "label": label})[
        0
    ]
    with torch.no_grad():
        ref = vae.decode(torch.from_numpy(noise), torch.from_numpy(label)).numpy()
    assert got.shape == (5, 8, 8)
    np.testing.assert_allclose(got, ref, atol=1e-5)
