"""The shipped speaker recipes load strictly, and the GCL regimes differ only where METHODS §1 says."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.conftest import REPO
from training.recipes.config import RecipeError, load_recipe
from training.recipes.speaker import SpeakerRecipe

RECIPES = sorted(p for p in (REPO / "recipes" / "speaker").glob("*.yaml") if p.stem != "synthetic-base")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads(path: Path):
    recipe = load_recipe(path, schema=SpeakerRecipe)
    assert recipe.method["name"] in ("gcl", "ap", "aam", "meta") and recipe.model["name"] in ("ecapa_tdnn", "resnet34")


def test_gcl_regimes_differ_only_in_the_sampler_mode():
    loaded = {
        m: load_recipe(REPO / f"recipes/speaker/synthetic-gcl-{m}.yaml", schema=SpeakerRecipe)
        for m in ("unsup", "semi", "sup")
    }
    base = dataclasses.replace(loaded["sup"], export_name="")
    for recipe in loaded.values():
        same = dataclasses.replace(recipe, export_name="", sampler=base.sampler)
        assert same == base
    assert [r.sampler.mode for r in loaded.values()] == ["unsupervised", "semi", "supervised"]


def test_a_misspelt_key_or_override_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"base: {REPO / 'recipes/speaker/synthetic-base.yaml'}\nmethod: {{name: gcl}}\nsampler: {{mdoe: supervised}}\n"
    )
    with pytest.raises(RecipeError, match="sampler.mdoe"):
        load_recipe(bad, schema=SpeakerRecipe)
    with pytest.raises(RecipeError, match="trainer.stepz"):
        load_recipe(REPO / "recipes/speaker/synthetic-gcl-sup.yaml", ["trainer.stepz=3"], schema=SpeakerRecipe)
    with pytest.raises(RecipeError, match="exactly one of data.manifest and data.synthetic"):
        load_recipe(REPO / "recipes/speaker/synthetic-gcl-sup.yaml", ["data.manifest=x.jsonl"], schema=SpeakerRecipe)
