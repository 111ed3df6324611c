"""Strict recipe loading: unknown keys, types, overrides, nesting, free-form sections, hashes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from training.recipes import RecipeError, build_recipe, load_recipe, recipe_hash, resume_hash, run_identity, to_yaml
from training.trainer import TrainerConfig


@dataclass(frozen=True)
class Crop:
    seconds: float = 2.0
    mode: Literal["random", "center"] = "random"


@dataclass(frozen=True)
class Data:
    manifest: Path
    speakers: tuple[int, ...] = ()
    crop: Crop = field(default_factory=Crop)
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    trainer: TrainerConfig
    data: Data
    model: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


GOOD = """
trainer: {steps: 1e3, steps_per_epoch: 100, lr: 1e-3, amp: off}
data:
  manifest: corpora/train.jsonl
  speakers: [1, 2, 3]
  crop: {seconds: 3}
model:
  name: ecapa_tdnn
  channels: 512
  blocks: [{dilation: 2}, {dilation: 3}]
"""


def write(folder: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_builds_nested_dataclasses_with_coercion(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD), schema=Recipe)
    assert recipe.trainer.steps == 1000 and isinstance(recipe.trainer.steps, int)
    assert recipe.trainer.lr == 0.001 and recipe.trainer.amp == "off"
    assert recipe.trainer.lr_decay == 0.95 and recipe.trainer.lr_decay_every_epochs == 10  # defaults
    assert recipe.data.manifest == Path("corpora/train.jsonl")
    assert recipe.data.speakers == (1, 2, 3)
    assert recipe.data.crop == Crop(seconds=3.0, mode="random")
    assert recipe.model == {"name": "ecapa_tdnn", "channels": 512, "blocks": [{"dilation": 2}, {"dilation": 3}]}


def test_unknown_key_names_dotted_path_and_known_keys(tmp_path: Path) -> None:
    text = GOOD.replace("crop: {seconds: 3}", "crop: {seconds: 3, sceonds: 4}")
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, text), schema=Recipe)
    message = str(err.value)
    assert "data.crop.sceonds: unknown key (did you mean 'seconds'?)" in message
    assert "known keys: seconds, mode" in message
    assert str(tmp_path / "recipe.yaml") in message


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "trainer": {"lrr": 1.0, "steps": "ten", "steps_per_epoch": 5, "progress": 1},
        "data": {"speakers": [1, "two"]},
        "extra": {},
    }
    with pytest.raises(RecipeError) as err:
        build_recipe(data, Recipe)
    problems = err.value.problems
    assert any(p.startswith("trainer.lrr: unknown key (did you mean 'lr'?)") for p in problems)
    assert any(p.startswith("trainer.steps: expected an integer, got 'ten'") for p in problems)
    assert any(p.startswith("trainer.progress: expected true or false") for p in problems)
    assert "data.manifest: missing (required)" in problems
    assert any(p.startswith("data.speakers[1]: expected an integer") for p in problems)
    assert any(p.startswith("extra: unknown key") for p in problems)
    assert len(problems) == 6


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"amp": "fp16"}, "trainer.amp: expected one of 'auto', 'bf16', 'off'"),
        ({"lr": True}, "trainer.lr: expected a number"),
        ({"steps": 2.5}, "trainer.steps: expected an integer"),
        ({"lr": -1.0}, "trainer: lr must be > 0"),  # the dataclass's own check, with its path
    ],
)
def test_type_errors(section: dict[str, Any], message: str) -> None:
    data = {"trainer": {"steps": 10, "steps_per_epoch": 5, **section}, "data": {"manifest": "m.jsonl"}}
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_recipe(data, Recipe)


def test_str_field_refuses_numbers() -> None:
    data = {"trainer": {"steps": 1, "steps_per_epoch": 1}, "data": {"manifest": "m"}, "note": 12}
    with pytest.raises(RecipeError, match="note: expected a string"):
        build_recipe(data, Recipe)


def test_overrides(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path, GOOD),
        [
            "trainer.lr=3e-4",
            "data.speakers=[7]",
            "model.channels=256",
            "data.weights.vox=0.5",
            "note=hello=world",
            "trainer.grad_clip=null",
        ],
        schema=Recipe,
    )
    assert recipe.trainer.lr == 3e-4
    assert recipe.data.speakers == (7,)
    assert recipe.model["channels"] == 256 and recipe.model["name"] == "ecapa_tdnn"
    assert recipe.data.weights == {"vox": 0.5}  # the section did not exist in the file
    assert recipe.note == "hello=world" and recipe.trainer.grad_clip is None
    with pytest.raises(RecipeError, match=r"trainer\.nope: unknown key"):
        load_recipe(write(tmp_path, GOOD), ["trainer.nope=1"], schema=Recipe)
    with pytest.raises(RecipeError, match="expected section.key=value"):
        load_recipe(write(tmp_path, GOOD), ["trainer.lr"], schema=Recipe)
    with pytest.raises(RecipeError, match="not a section"):
        load_recipe(write(tmp_path, GOOD), ["trainer.lr.x=1"], schema=Recipe)


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="duplicate key 'lr'"):
        load_recipe(write(tmp_path, "trainer: {steps: 1, lr: 1.0, lr: 2.0}\n"), schema=Recipe)


def test_hash_ignores_key_order_and_formatting(tmp_path: Path) -> None:
    a = load_recipe(write(tmp_path, GOOD, "a.yaml"), schema=Recipe)
    reordered = """
model: {channels: 512, blocks: [{dilation: 2}, {dilation: 3}], name: ecapa_tdnn}
data: {crop: {seconds: 3.0}, speakers: [1, 2, 3], manifest: corpora/train.jsonl}
trainer:            # comments do not count
  amp: off
  lr: 0.001
  steps_per_epoch: 100
  steps: 1000
"""
    b = load_recipe(write(tmp_path, reordered, "b.yaml"), schema=Recipe)
    assert a == b and recipe_hash(a) == recipe_hash(b) and len(recipe_hash(a)) == 64
    c = load_recipe(write(tmp_path, GOOD, "a.yaml"), ["model.channels=256"], schema=Recipe)
    assert recipe_hash(c) != recipe_hash(a)
    longer = load_recipe(
        write(tmp_path, GOOD, "a.yaml"), ["trainer.steps=5000", "trainer.progress=false"], schema=Recipe
    )
    assert recipe_hash(longer) != recipe_hash(a) and resume_hash(longer) == resume_hash(a)


def test_to_yaml_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD), ["note=x"], schema=Recipe)
    text = to_yaml(recipe, header=f"recipe_hash: {recipe_hash(recipe)}")
    assert text.startswith("# recipe_hash: ")
    again = load_recipe(write(tmp_path, text, "resolved.yaml"), schema=Recipe)
    assert again == recipe and recipe_hash(again) == recipe_hash(recipe)


def test_run_identity_is_the_hashes_and_the_resolved_text(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD), ["trainer.steps=7"], schema=Recipe)
    identity = run_identity(recipe)
    assert (identity.recipe_hash, identity.resume_hash) == (recipe_hash(recipe), resume_hash(recipe))
    assert load_recipe(write(tmp_path, identity.header() + identity.text, "run.yaml"), schema=Recipe) == recipe


def test_base_inheritance(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "base.yaml")
    (tmp_path / "exp").mkdir()
    child = write(tmp_path / "exp", "base: ../base.yaml\ntrainer: {lr: 0.01}\nmodel: {channels: 1024}\n")
    recipe = load_recipe(child, schema=Recipe)
    assert recipe.trainer.lr == 0.01 and recipe.trainer.steps == 1000  # merged key by key
    assert recipe.model["channels"] == 1024 and recipe.model["name"] == "ecapa_tdnn"
    write(tmp_path, "base: b.yaml\n", "a.yaml")
    write(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(RecipeError, match="'base' loops"):
        load_recipe(tmp_path / "a.yaml", schema=Recipe)
