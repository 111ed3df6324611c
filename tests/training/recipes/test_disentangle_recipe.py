"""Disentangling recipes (METHODS §7): strict loading, variants that differ only in `method`, and
tiny runs of both methods through `toitsu train`, `toitsu eval` (report, traversal PNGs) and
`toitsu export` (a generator card whose graph decodes what the run's model decodes)."""

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
from training.recipes.disentangle import DisentangleRecipe
from training.recipes.kinds import load_kind_recipe

TINY = {
    "kind": "disentangle",
    "method": {"name": "group_blocks", "block": 3, "hidden": 32, "head_hidden": 16},
    "data": {"per_group": 40, "size": 16, "batch_size": 30},
    "evaluation": {"per_group": 30, "steps": 4},
    "trainer": {"steps": 12, "steps_per_epoch": 4, "log_every": 4, "checkpoint_every": 0, "tensorboard": False},
    "export_name": "tiny-disentangle",
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_shipped_recipes_differ_only_in_method_and_bad_ones_are_errors() -> None:
    ours = load_recipe(REPO / "recipes/disentangle/procedural-group-blocks.yaml", schema=DisentangleRecipe)
    base = load_recipe(REPO / "recipes/disentangle/procedural-beta-vae.yaml", schema=DisentangleRecipe)
    assert (ours.method["name"], base.method["name"]) == ("group_blocks", "beta_vae")
    assert (ours.data, ours.trainer, ours.evaluation) == (base.data, base.trainer, base.evaluation)
    for key in ("block", "hidden", "beta"):
        assert ours.method[key] == base.method[key]  # same latent width and β: only the head differs
    with pytest.raises(RecipeError, match="its modules do not build: .*blok"):
        load_kind_recipe(REPO / "recipes/disentangle/procedural-beta-vae.yaml", ["method.blok=3"], check=True)
    with pytest.raises(RecipeError, match="data.groups"):
        build_recipe({**TINY, "data": {"groups": ["sprites", "cars"]}}, DisentangleRecipe)
    with pytest.raises(RecipeError, match="method.name"):
        build_recipe({**TINY, "method": {"name": "vae"}}, DisentangleRecipe)
    with pytest.raises(RecipeError, match="evaluation.bin: unknown key"):
        build_recipe({**TINY, "evaluation": {"bin": 3}}, DisentangleRecipe)


@pytest.mark.parametrize("method", ["group_blocks", "beta_vae"])
def test_train_eval_export_through_the_cli(method: str, tmp_path: Path, capsys) -> None:
    from contracts.card import GeneratorCard, load_card
    from toitsu.commands.train import evaluate, export, train
    from training.recipes.disentangle import load_disentangle_run

    spec = {**TINY, "method": {**TINY["method"], "name": method}}
    if method == "beta_vae":
        spec["method"] = {"name": "beta_vae", "block": 3, "hidden": 32}
    recipe_path = tmp_path / "tiny.yaml"
    recipe_path.write_text(json.dumps(spec))
    run_dir = tmp_path / "run"
    args = argparse.Namespace(recipe=recipe_path, overrides=[], run_dir=run_dir, no_resume=False, no_eval=False)
    assert train(args) == 0
    assert "MIG" in capsys.readouterr().out
    run = json.loads((run_dir / "run.json").read_text())
    assert run["kind"] == "disentangle" and run["step"] == 12 and run["train_images"] == 120

    out = tmp_path / "eval"
    assert evaluate(argparse.Namespace(target=run_dir, overrides=[], untrained=False, out=out, json=True)) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["mig_by_group"]) == {"sprites", "shapes3d", "mpi3d"}
    assert 0.0 <= report["mig"] <= 1.0 and report["images"] == 90
    assert len(report["groups"]["mpi3d"]["gaps"]) == 7 and len(report["groups"]["sprites"]["gaps"]) == 6
    if method == "group_blocks":
        assert 1 / 3 <= report["purity"] <= 1.0 and 0.0 <= report["nmi"] <= 1.0
    else:
        assert report["purity"] is None and report["nmi"] is None
    assert len(report["traversals"]) == 3  # one per block (method) or per 3-wide slice (β-VAE)
    for name in report["traversals"]:
        with Image.open(out / name) as picture:  # 3 dims × 4 steps of 16×16 tiles, 1-pixel borders, ×4
            assert picture.size == ((4 * 17 + 1) * 4, (3 * 17 + 1) * 4) and picture.mode == "RGB"

    models = tmp_path / "models"
    ns = argparse.Namespace(run_dir=run_dir, models=models, work=tmp_path / "build", name=None, format="onnx")
    assert export(ns) == 0
    card = load_card(models / "tiny-disentangle" / "1")
    assert isinstance(card, GeneratorCard) and card.generator.channels == 3
    assert card.outputs[0].shape == [-1, 3, 16, 16]
    assert card.parity is not None and card.parity.checks[0].max_abs_diff <= 1e-5
    import onnxruntime as ort

    _, vae, _, _ = load_disentangle_run(run_dir)
    session = ort.InferenceSession(str(models / "tiny-disentangle/1/model.onnx"))
    rng = np.random.default_rng(0)
    if method == "group_blocks":
        assert card.generator.conditioning == "latent-block" and card.generator.latent_dim == 3
        noise, label = rng.standard_normal((4, 3)).astype(np.float32), np.array([0, 1, 2, 1])
        got = session.run(None, {"noise": noise, "label": label})[0]
        z = np.zeros((4, 9), dtype=np.float32)  # the block placement, written out by hand
        for i, g in enumerate(label):
            z[i, 3 * g : 3 * g + 3] = noise[i]
    else:
        assert card.generator.conditioning == "none" and card.generator.latent_dim == 9
        z = rng.standard_normal((4, 9)).astype(np.float32)
        got = session.run(None, {"noise": z})[0]
    with torch.no_grad():
        ref = vae.decode_latent(torch.from_numpy(z)).numpy()
    assert got.shape == (4, 3, 16, 16)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_paper_recipes_need_only_data_paths_and_a_missing_file_is_named(tmp_path: Path) -> None:
    ours = load_recipe(REPO / "recipes/disentangle/paper-group-blocks.yaml", schema=DisentangleRecipe)
    base = load_recipe(REPO / "recipes/disentangle/paper-beta-vae.yaml", schema=DisentangleRecipe)
    assert ours.data == base.data and set(ours.data.files) == {"sprites", "mpi3d"} and ours.data.size == 64
    with pytest.raises(RecipeError, match="data.files"):
        build_recipe({**TINY, "data": {"files": {"shapes3d": "3dshapes.h5"}}}, DisentangleRecipe)
    from training.recipes.disentangle import training_data

    missing = tmp_path / "nowhere.npz"
    recipe = build_recipe({**TINY, "data": {**TINY["data"], "files": {"mpi3d": str(missing)}}}, DisentangleRecipe)
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        training_data(recipe.data)


@pytest.mark.gpu
def test_a_tiny_run_trains_on_cuda(tmp_path: Path) -> None:
    from training.recipes.disentangle import train_disentangle_recipe

    spec = {**TINY, "trainer": {**TINY["trainer"], "device": "cuda", "amp": "auto"}}
    run = train_disentangle_recipe(build_recipe(spec, DisentangleRecipe), tmp_path / "run")
    assert run["step"] == 12 and np.isfinite(run["metrics"]["loss"])
    assert run["eval"]["nmi"] is not None and 0.0 <= run["eval"]["mig"] <= 1.0
