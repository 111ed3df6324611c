"""Audio-visual recipes (METHODS §8): the shipped variants differ only in their method section,
and a tiny recipe trains and evaluates end to end for the teacher, oracle and regression methods."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from training.data.av_corpus import clip_frames
from training.data.manifest import read_manifest
from training.methods.teacher_sampling import write_teacher_file
from training.recipes.audio_visual import AudioVisualRecipe, manifest_path, train_av_recipe
from training.recipes.config import RecipeError, build_recipe, load_recipe, to_plain

RECIPES = sorted(p for p in (REPO / "recipes/audio-visual").glob("synthetic-*.yaml") if p.stem != "synthetic-base")


def test_the_shipped_variants_differ_only_in_method() -> None:
    loaded = {p.stem.removeprefix("synthetic-"): load_recipe(p, schema=AudioVisualRecipe) for p in RECIPES}
    assert set(loaded) == {"teacher", "unsupervised", "regression", "same-video", "no-screening", "oracle"}

    def rest(recipe: AudioVisualRecipe) -> dict:
        return {k: v for k, v in to_plain(recipe).items() if k != "method"}

    assert all(rest(r) == rest(loaded["teacher"]) for r in loaded.values())
    m = {name: r.method for name, r in loaded.items()}
    assert (m["teacher"].cross_video, m["teacher"].screen, m["teacher"].teacher) == (True, True, "face")
    assert not m["same-video"].cross_video and not m["no-screening"].screen and m["oracle"].teacher == "oracle"
    assert (m["teacher"].k, m["teacher"].tau_pos, m["teacher"].tau_neg) == (5, 0.5, 0.4)  # METHODS §8 defaults


def test_misspelt_method_keys_are_errors() -> None:
    with pytest.raises(RecipeError, match="method.tau_nge"):
        load_recipe(RECIPES[0], ["method.tau_nge=0.3"], schema=AudioVisualRecipe)
    with pytest.raises(RecipeError, match="method.name"):
        load_recipe(RECIPES[0], ["method.name=distill"], schema=AudioVisualRecipe)


def _tiny(tmp: Path, method: dict, teacher: str | None = None) -> AudioVisualRecipe:
    corpus = {"out": str(tmp / "av"), "identities": 5, "videos_per_identity": 2, "clips_per_video": 2,
              "frames_per_clip": 1, "size": 32, "split_fractions": [0.2, 0.4]}  # fmt: skip
    return build_recipe(
        {
            "kind": "audio-visual",
            "data": {"synthetic": corpus, "teacher": teacher},
            "model": {
                "name": "ecapa_tdnn",
                "channels": 16,
                "mfa_channels": 48,
                "attention_channels": 8,
                "se_channels": 8,
                "embedding_dim": 16,
                "n_mels": 24,
                "frontend": {"n_mels": 24},
            },  # fmt: skip
            "method": method,
            "sampler": {"classes_per_batch": 2, "per_class": 2, "crop_seconds": 0.5},
            "trainer": {
                "steps": 2,
                "steps_per_epoch": 2,
                "log_every": 1,
                "checkpoint_every": 0,
                "num_workers": 0,
                "progress": False,
                "tensorboard": False,
            },  # fmt: skip
        },
        AudioVisualRecipe,
    )


def _mean_pixel(chips: np.ndarray) -> np.ndarray:
    return chips.reshape(chips.shape[0], -1, 3).mean(axis=1) - 100.0


def test_tiny_recipes_train_and_report_the_test_identities_eer(tmp_path: Path) -> None:
    oracle = _tiny(tmp_path, {"name": "teacher", "teacher": "oracle", "k": 10})
    manifest = manifest_path(oracle.data)
    records = read_manifest(manifest)
    test_clips = sum(r.split == "test" for r in records)
    assert test_clips == 8  # two test identities × 2 videos × 2 clips
    run = train_av_recipe(oracle, tmp_path / "oracle")
    assert run["step"] == 2 and 0.0 <= run["eval"]["eer"] <= 1.0
    assert run["eval"]["trials"] == test_clips * (test_clips - 1) // 2
    assert json.loads((tmp_path / "oracle" / "run.json").read_text())["step"] == 2
    teacher = write_teacher_file(records, manifest, tmp_path / "teacher.npz", _mean_pixel)
    assert {str(r.extra["clip"]) for r in records} == set(np.load(teacher)["clips"].tolist())
    assert clip_frames(records[0], manifest)[0].is_file()
    regression = _tiny(tmp_path, {"name": "regression"}, str(teacher))
    assert "cosine" in train_av_recipe(regression, tmp_path / "regression", evaluate=False)["metrics"]
    face = _tiny(tmp_path, {"name": "teacher", "tau_pos": None, "tau_neg": None, "screen": False}, str(teacher))
    assert train_av_recipe(face, tmp_path / "face", evaluate=False)["step"] == 2
    with pytest.raises(ValueError, match="needs data.teacher"):
        train_av_recipe(_tiny(tmp_path, {"name": "teacher"}), tmp_path / "none")
