"""METHODS: one file per seed method in training/methods/, each registered once and citing its section."""

from __future__ import annotations

import importlib

import pytest

from tests.conftest import REPO
from training.methods import METHODS, GraphGroupingLoss, MetaTrainingSetLoss
from training.methods.closed_form_pretraining import D1
from training.recipes import face, speaker_training

METHOD_FILES = sorted(p.stem for p in (REPO / "training" / "methods").glob("*.py") if p.stem != "__init__")


def test_every_method_file_is_registered_once_and_nothing_else_is() -> None:
    assert sorted(METHODS) == METHOD_FILES
    assert sorted(m.section for m in METHODS.values()) == [1, 2, 4, 5, 8]


@pytest.mark.parametrize("name", METHOD_FILES)
def test_a_method_is_built_by_its_own_file_which_cites_its_section(name: str) -> None:
    method = METHODS[name]
    module = importlib.import_module(f"training.methods.{name}")
    assert method.build.__module__ == module.__name__
    assert f"METHODS §{method.section}" in (module.__doc__ or "").splitlines()[0]


def test_build_takes_a_recipe_section_as_keyword_arguments() -> None:
    walk = METHODS["graph_grouping"].build(form="walk", steps=3)
    assert isinstance(walk, GraphGroupingLoss) and walk.steps == 3
    assert isinstance(METHODS["meta_training_sets"].build(lam=2.0), MetaTrainingSetLoss)
    assert METHODS["closed_form_pretraining"].build("d1", n_betas=4) == D1(n_betas=4)
    with pytest.raises(TypeError, match="stpes"):
        METHODS["graph_grouping"].build(form="walk", stpes=3)
    with pytest.raises(ValueError, match="form"):
        METHODS["generalized_contrastive"].build(form="triplet")


@pytest.mark.parametrize(("kind", "keys"), [("speaker", speaker_training.METHOD_KEYS), ("face", face.METHOD_KEYS)])
def test_recipe_method_names_point_at_methods_of_their_kind(kind: str, keys: dict[str, str]) -> None:
    for recipe_name, method in keys.items():
        assert kind in METHODS[method].kinds, (recipe_name, method)
