"""Exporting a trained face run: a published version with a face card whose graph (uint8 NHWC
chips in, normalisation inside) matches torch; a graph that differs from the module is refused."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from export.parity import ParityError, onnx_session
from export.trained_face import (
    corpus_chips,
    export_face_encoder,
    export_face_run,
    face_parity,
)
from tests.training.recipes.test_face_recipe import TINY
from training.recipes.config import build_recipe
from training.recipes.face import (
    FaceRecipe,
    load_trained_face_encoder,
    train_face_recipe,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("face-run") / "run"
    recipe = build_recipe({**TINY, "trainer": {**TINY["trainer"], "steps": 2, "log_every": 1}}, FaceRecipe)
    train_face_recipe(recipe, path)
    return path


def test_export_publishes_a_face_version_within_tolerance(run_dir, tmp_path):
    from contracts.card import load_card

    version_dir = export_face_run(run_dir, tmp_path / "models")
    assert version_dir == tmp_path / "models/tiny-face/1" and (tmp_path / "models/tiny-face/config.pbtxt").exists()
    card = json.loads((version_dir / "card.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    assert card["modality"] == "face" and card["inputs"] == [
        {"name": "chip", "dtype": "uint8", "shape": [-1, 112, 112, 3], "role": "image"}
    ]
    assert card["image"]["size"] == [112, 112] and card["image"]["layout"] == "NHWC"
    assert (card["image"]["dtype"], card["image"]["channels"]) == ("uint8", "RGB")
    assert card["embedding"] == {"output": "embedding", "dim": 16, "normalized": True, "metric": "cosine"}
    assert card["provenance"]["config_hash"] == run["recipe_hash"] and card["provenance"]["step"] == 2
    assert card["provenance"]["eval"]["eer"] == run["eval"]["eer"] and "graph_grouping" in card["provenance"]["method"]
    checks = {c["check"]: c for c in card["parity"]["checks"]}
    assert checks["graph"]["max_abs_diff"] <= 1e-4 and checks["batching"]["max_abs_diff"] <= 1e-5
    served = load_card(version_dir)
    assert served.modality == "face" and served.embedding_dim == 16 and served.input_with_role("image").name == "chip"

    chips, _ = corpus_chips(112)
    out = onnx_session(version_dir / "model.onnx").run(None, {"chip": chips[:3]})[0]
    assert out.shape == (3, 16) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_a_graph_that_differs_from_the_module_is_refused(run_dir, tmp_path):
    trained = load_trained_face_encoder(run_dir)
    path = export_face_encoder(trained.encoder, tmp_path / "model.onnx", 112)
    chips, _ = corpus_chips(112)
    assert face_parity(trained.encoder, path, chips[:4])[0].max_abs_diff <= 1e-4
    with torch.no_grad():
        trained.encoder.fc.weight.add_(0.05)  # the module moved on after export
    with pytest.raises(ParityError, match="graph: max abs diff"):
        face_parity(trained.encoder, path, chips[:4])


def test_toitsu_export_dispatches_a_face_run(run_dir, tmp_path, capsys):
    from toitsu.commands.train import export

    args = argparse.Namespace(
        run_dir=run_dir, models=tmp_path / "models", work=tmp_path, name="cli-face", format="onnx"
    )
    assert export(args) == 0
    assert f"published {tmp_path / 'models' / 'cli-face' / '1'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "models/cli-face/1/card.json").read_text())["modality"] == "face"
