"""Face recipes (METHODS §5): the shipped ones load strictly and differ only in `method`; a tiny
run of each method trains, evaluates on held-out identities and goes through `toitsu train`."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from tests.conftest import REPO
from training.recipes.config import RecipeError, build_recipe, load_recipe, to_plain
from training.recipes.face import FaceRecipe, cross_track_eers, train_face_recipe

RECIPES = sorted(p for p in (REPO / "recipes" / "face").glob("*.yaml") if p.stem != "synthetic-base")
TINY = {
    "kind": "face",
    "export_name": "tiny-face",
    "data": {
        "synthetic": {"identities": 10, "tracks_per_identity": 2, "frames_per_track": 4, "heldout_fraction": 0.3},
        "groups_per_batch": 4,
        "frames_per_group": 2,
    },
    "model": {"name": "iresnet", "widths": [4, 8, 8, 16], "embedding_dim": 16, "input_downsample": 4},
    "method": {"name": "graph_grouping", "form": "walk", "steps": 2},
    "trainer": {
        "steps": 6,
        "steps_per_epoch": 6,
        "lr": 0.003,
        "log_every": 2,
        "checkpoint_every": 0,
        "num_workers": 0,
        "progress": False,
        "tensorboard": False,
    },
}


def test_the_shipped_recipes_differ_only_in_method():
    loaded = {p.stem: load_recipe(p, schema=FaceRecipe) for p in RECIPES}
    assert set(loaded) == {
        "graph-walk-t1",
        "graph-walk-t2",
        "graph-walk-t3",
        "graph-ncut",
        "gcl-pairwise",
        "graph-walk-t2-literal",
    }

    def rest(recipe: FaceRecipe) -> dict:
        return {k: v for k, v in to_plain(recipe).items() if k not in ("method", "export_name")}

    for recipe in loaded.values():
        assert rest(recipe) == rest(loaded["gcl-pairwise"])
    assert loaded["graph-walk-t3"].method == {"name": "graph_grouping", "form": "walk", "steps": 3}
    assert loaded["gcl-pairwise"].method == {"name": "gcl", "form": "sigmoid"}


def test_misspelt_or_inconsistent_recipes_are_errors():
    path = REPO / "recipes/face/graph-walk-t2.yaml"
    with pytest.raises(RecipeError, match="data.group_byy"):
        load_recipe(path, ["data.group_byy=track"], schema=FaceRecipe)
    with pytest.raises(RecipeError, match="frames_per_group must be even"):
        load_recipe(REPO / "recipes/face/gcl-pairwise.yaml", ["data.frames_per_group=3"], schema=FaceRecipe)
    with pytest.raises(RecipeError, match="exactly one of data.synthetic and data.manifest"):
        load_recipe(path, ["data.manifest=x.jsonl"], schema=FaceRecipe)
    with pytest.raises(RecipeError, match="method.name"):
        load_recipe(path, ["method.name=arcface"], schema=FaceRecipe)


def test_cross_track_eers_skip_same_track_pairs_and_split_by_quality():
    import numpy as np

    # Two identities × two tracks × two frames; same-track pairs would be perfect, others are not.
    emb = np.array([[1, 0], [1, 0], [0.6, 0.8], [0.6, 0.8], [0, 1], [0, 1], [0.8, 0.6], [0.8, 0.6]], dtype=float)
    identity, track = np.array([0, 0, 0, 0, 1, 1, 1, 1]), np.array([0, 0, 1, 1, 2, 2, 3, 3])
    low = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
    out = cross_track_eers(emb, identity, track, low)
    assert out["overall"]["targets"] == 8 and out["overall"]["nontargets"] == 16  # 24 cross-track pairs
    assert out["low_low"]["targets"] == 2 and out["high_high"]["targets"] == 2
    assert out["overall"]["eer"] > 0.3  # identity 0's track 1 is closer to identity 1's track 3
    assert set(cross_track_eers(emb, identity, track, None)) == {"overall"}


@pytest.mark.parametrize(
    "method",
    [
        {"name": "graph_grouping", "form": "walk", "steps": 2},
        {"name": "graph_grouping", "form": "ncut"},
        {"name": "gcl", "form": "sigmoid"},
    ],
    ids=["walk", "ncut", "gcl"],
)
def test_a_tiny_run_trains_and_evaluates(tmp_path, method):
    run = train_face_recipe(build_recipe({**TINY, "method": method}, FaceRecipe), tmp_path / "run")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert run["step"] == 6 and len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    report = json.loads((tmp_path / "run/eval/report.json").read_text())
    assert report["identities"] == 3 and report["frames"] == 24 and 0.0 <= report["eer"] <= 1.0
    assert (
        report["pairs"]["low_low"]["targets"] + report["pairs"]["high_high"]["targets"]
        <= report["pairs"]["overall"]["targets"]
    )
    assert run["train_groups"] == 7 and run["synthetic"]["identities"] == 10


def test_toitsu_train_and_eval_dispatch_a_face_recipe(tmp_path, capsys):
    from toitsu.commands.train import evaluate, train

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps(TINY))  # JSON is YAML
    run_dir = tmp_path / "run"
    assert (
        train(
            argparse.Namespace(
                recipe=recipe, overrides=["trainer.steps=2"], run_dir=run_dir, no_resume=False, no_eval=False
            )
        )
        == 0
    )
    assert "held-out EER" in capsys.readouterr().out and (run_dir / "run.json").exists()
    assert (
        evaluate(argparse.Namespace(target=run_dir, overrides=[], untrained=False, out=tmp_path / "ev", json=True)) == 0
    )
    assert json.loads(capsys.readouterr().out)["frames"] == 24
