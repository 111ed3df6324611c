"""Exporting a trained sound run: a published version whose graph matches torch, with a sound
card; a graph that differs from the module is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from contracts.card import SoundCard, card_json
from contracts.card_sections import Calibration
from export.parity import ParityError
from export.trained_sound import add_calibration, corpus_clips, export_sound_run, sound_parity
from export.trained_speaker import export_encoder
from training.recipes.config import build_recipe
from training.recipes.sound import SoundRecipe, load_trained_sound_encoder, train_sound_recipe

TINY = {
    "kind": "sound",
    "export_name": "tiny-sound",
    "model": {
        "name": "sound_cnn",
        "n_mels": 24,
        "channels": [4, 8, 8, 16],
        "embedding_dim": 16,
        "frontend": {"n_mels": 24},
    },
    "data": {"formula": {"dataset": "d3"}, "clip_seconds": 0.5, "batch_size": 8, "eval_batches": 1},
    "trainer": {
        "steps": 3,
        "steps_per_epoch": 3,
        "log_every": 1,
        "checkpoint_every": 0,
        "num_workers": 0,
        "progress": False,
        "tensorboard": False,
    },
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sound-run") / "run"
    train_sound_recipe(build_recipe(TINY, SoundRecipe), path)
    return path


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


def test_export_publishes_a_sound_version_within_tolerance(run_dir, work_dir, tmp_path):
    from contracts.card import load_card
    from export.parity import onnx_session

    models = tmp_path / "models"
    version_dir = export_sound_run(run_dir, models, work_dir)
    assert version_dir == models / "tiny-sound" / "1" and (models / "tiny-sound" / "config.pbtxt").exists()
    card = json.loads((version_dir / "card.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    assert card["modality"] == "sound" and card["embedding"] == {
        "output": "embedding",
        "dim": 16,
        "normalized": True,
        "metric": "cosine",
    }
    assert card["audio"] == {"sample_rate": 16000, "channels": 1} and "calibration" not in card
    assert card["provenance"]["config_hash"] == run["recipe_hash"] and card["provenance"]["formula"] == "d3"
    assert card["provenance"]["step"] == 3 and card["provenance"]["eval"]["accuracy"] == run["eval"]["accuracy"]
    checks = {c["check"]: c for c in card["parity"]["checks"]}
    assert checks["graph"]["max_abs_diff"] <= 1e-4 and checks["padding"]["max_abs_diff"] <= 1e-5
    assert card["parity"]["inputs"] == ["8 clips of parity-sounds-16000"]
    served = load_card(version_dir)
    assert served.modality == "sound" and served.embedding_dim == 16 and served.calibration is None

    clips, _ = corpus_clips(work_dir, 16000)
    out = onnx_session(version_dir / "model.onnx").run(
        None, {"waveform": np.stack(clips[:2]), "lengths": np.array([len(c) for c in clips[:2]], dtype=np.int64)}
    )[0]
    assert out.shape == (2, 16) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_calibration_hook_and_later_calibration(run_dir, work_dir, tmp_path):
    models = tmp_path / "models"
    calibration = Calibration(
        dev_trials="sound-dev",
        n_target=3,
        n_nontarget=30,
        eer=0.1,
        eer_threshold=0.5,
        thresholds=[{"far": 0.01, "threshold": 0.7, "frr": 0.3}],
    )
    written = card_json(SoundCard.model_construct(calibration=calibration))["calibration"]
    seen = {}

    def calibrate(staged, card):
        seen.update(files=sorted(p.name for p in staged.iterdir()), modality=card.modality)
        return calibration

    first = export_sound_run(run_dir, models, work_dir)
    second = export_sound_run(run_dir, models, work_dir, calibrate=calibrate)
    assert seen == {"files": ["card.json", "model.onnx"], "modality": "sound"}
    assert json.loads((second / "card.json").read_text())["calibration"] == written
    assert add_calibration(first, calibration).calibration == calibration
    assert json.loads((first / "card.json").read_text())["calibration"] == written


def test_a_graph_that_differs_from_the_module_is_refused(run_dir, work_dir, tmp_path):
    trained = load_trained_sound_encoder(run_dir)
    path = export_encoder(trained.encoder, tmp_path / "model.onnx", trained.sample_rate)
    clips, _ = corpus_clips(work_dir, 16000, count=3)
    assert sound_parity(trained.encoder, path, clips)[0].max_abs_diff <= 1e-4
    with torch.no_grad():
        trained.encoder.linear.weight.add_(0.05)  # the module moved on after export
    with pytest.raises(ParityError, match="graph: max abs diff"):
        sound_parity(trained.encoder, path, clips)


def test_toitsu_export_dispatches_a_sound_run(run_dir, work_dir, tmp_path, capsys):
    import argparse

    from toitsu.commands.train import export

    args = argparse.Namespace(
        run_dir=run_dir, models=tmp_path / "models", work=work_dir, name="cli-sound", format="onnx"
    )
    assert export(args) == 0
    assert f"published {tmp_path / 'models' / 'cli-sound' / '1'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "models/cli-sound/1/card.json").read_text())["modality"] == "sound"
