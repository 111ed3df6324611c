"""KINDS: every shipped recipe loads strictly through its kind and builds its model and its loss
(or head), so that a bad constructor argument fails at load rather than mid-run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from tests.conftest import REPO
from tests.training.recipes.test_face_recipe import TINY as FACE_TINY
from training.disentangle.models import MODELS as DISENTANGLE_MODELS
from training.generative.models import MODELS as VAE_MODELS
from training.losses import AAMSoftmax
from training.methods import AngularPrototypicalLoss, GeneralizedContrastiveLoss, GraphGroupingLoss, MetaTrainingSetLoss
from training.methods.teacher_sampling import TeacherRegressionLoss
from training.models import SOUND_ENCODERS, SPEAKER_ENCODERS
from training.models.iresnet import IResNet
from training.recipes.config import RecipeError
from training.recipes.face import FaceRecipe
from training.recipes.kinds import KINDS, check_modules, load_kind_recipe
from training.recipes.sound import SoundRecipe
from training.recipes.speaker import SpeakerRecipe

# recipes/<kind>/dev/ holds dev-set settings (read strictly by export/, e.g. the sound calibration's
# real-use set), not recipes.
ALL = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if p.parent.name != "dev")


def _bases(path: Path) -> list[Path]:
    named = yaml.safe_load(path.read_text()).get("base") or []
    return [(path.parent / b).resolve() for b in ([named] if isinstance(named, str) else named)]


# Files another recipe names as its `base:`: they may be fragments (a section left to the children).
BASES = {base for path in ALL for base in _bases(path)}

LOSS_OF = {
    ("speaker", "gcl"): GeneralizedContrastiveLoss,
    ("speaker", "ap"): AngularPrototypicalLoss,
    ("speaker", "aam"): AAMSoftmax,
    ("speaker", "meta"): MetaTrainingSetLoss,
    ("face", "graph_grouping"): GraphGroupingLoss,
    ("face", "gcl"): GeneralizedContrastiveLoss,
}
# METHODS §4: D1 has 16 β cells, D2 4 β × 6 bands, D3 4 drifts × 4 envelopes, "all" their union.
FORMULA_CLASSES = {"d1": 16, "d2": 24, "d3": 16, "all": 56}


def _name(path: Path) -> str:
    return str(path.relative_to(REPO / "recipes"))


def test_the_recipe_kind_picks_the_schema_and_the_cli_reports_a_bad_kind() -> None:
    from toitsu.commands.train import _load

    assert list(KINDS) == ["speaker", "sound", "face", "generative", "disentangle", "audio-visual"] and all(
        k.name == n for n, k in KINDS.items()
    )
    kind, recipe = load_kind_recipe(REPO / "recipes/speaker/synthetic-aam.yaml")
    assert kind is KINDS["speaker"] and isinstance(recipe, SpeakerRecipe)  # no `kind` key: speaker
    kind, recipe = load_kind_recipe(REPO / "recipes/speaker/synthetic-aam.yaml", ["kind=speaker"])
    assert kind is KINDS["speaker"] and isinstance(recipe, SpeakerRecipe)
    kind, recipe = load_kind_recipe(REPO / "recipes/sound/pretrain-d2.yaml", ["trainer.steps=5"])
    assert kind is KINDS["sound"] and isinstance(recipe, SoundRecipe) and recipe.trainer.steps == 5
    assert isinstance(load_kind_recipe(REPO / "recipes/face/graph-ncut.yaml")[1], FaceRecipe)
    with pytest.raises(
        SystemExit,
        match="kind: expected one of speaker, sound, face, generative, disentangle, audio-visual, got 'video'",
    ):
        _load(REPO / "recipes/sound/pretrain-d1.yaml", ["kind=video"])


@pytest.mark.parametrize("path", ALL, ids=_name)
def test_every_recipe_loads_strictly_and_builds_its_model_and_loss(path: Path) -> None:
    if path in BASES:
        try:
            load_kind_recipe(path)
        except RecipeError as exc:  # a fragment: it may leave sections out, but get none wrong
            assert exc.problems and all(p.endswith("missing (required)") for p in exc.problems), exc
            return
    kind, recipe = load_kind_recipe(path)
    modules = check_modules(kind, recipe, str(path))
    if kind.name == "disentangle":
        method = dict(recipe.method)
        vae = modules["vae"]
        assert type(vae) is DISENTANGLE_MODELS[method.pop("name")]
        for key, value in method.items():  # the section's arguments reached the constructor
            assert getattr(vae, key) == value, key
        assert (vae.size, vae.groups) == (recipe.data.size, len(recipe.data.groups))
        return
    model = dict(recipe.model)
    if kind.name == "generative":
        vae = modules["vae"]
        assert type(vae) is VAE_MODELS[model.pop("name")]
        for key, value in model.items():  # the section's arguments reached the constructor
            assert getattr(vae, key) == value, key
        assert (vae.height, vae.width, vae.classes) == (recipe.data.height, recipe.data.width, recipe.data.classes)
        return
    encoder = modules["encoder"]
    assert all(isinstance(m, nn.Module) for m in modules.values())
    if "embedding_dim" in model:
        assert encoder.embedding_dim == model["embedding_dim"]
    if kind.name == "sound":
        assert isinstance(encoder, SOUND_ENCODERS[model["name"]])
        formula = recipe.data.formula
        assert modules["head"].out_features == (FORMULA_CLASSES[formula.dataset] if formula else 2)
        return
    if kind.name == "audio-visual":  # a speaker student; the method section is a dataclass
        assert isinstance(encoder, SPEAKER_ENCODERS[model["name"]])
        regression = recipe.method.name == "regression"
        assert type(modules["loss"]) is (TeacherRegressionLoss if regression else GeneralizedContrastiveLoss)
        return
    assert isinstance(encoder, SPEAKER_ENCODERS[model["name"]] if kind.name == "speaker" else IResNet)
    method = dict(recipe.method)
    loss = modules["loss"]
    assert type(loss) is LOSS_OF[kind.name, method.pop("name")]
    for key, value in method.items():  # the section's arguments reached the constructor
        got = getattr(loss, key)
        assert (float(got()) == pytest.approx(value)) if callable(got) else got == value, key


@pytest.mark.parametrize(
    ("recipe", "override", "complaint"),
    [
        ("speaker/synthetic-gcl-sup.yaml", "model.chanels=64", "chanels"),
        ("speaker/synthetic-meta.yaml", "method.lam=0", "lam must be > 0"),
        ("face/graph-walk-t2.yaml", "method.stpes=3", "stpes"),
        ("face/graph-ncut.yaml", "method.form=cut", "form must be one of"),
        ("sound/pretrain-d1.yaml", "data.formula.params.n_beta=4", "n_beta"),
        ("sound/finetune-base.yaml", "model.frontend.sample_rate=8000", "disagrees with data.sample_rate"),
    ],
)
def test_a_bad_constructor_argument_fails_at_load(recipe: str, override: str, complaint: str) -> None:
    path = REPO / "recipes" / recipe
    kind, loaded = load_kind_recipe(path, [override])  # the free-form sections pass the schema…
    with pytest.raises(RecipeError, match=complaint) as caught:  # …but not the constructors
        check_modules(kind, loaded, str(path))
    assert str(path) in str(caught.value) and "modules do not build" in str(caught.value)
    with pytest.raises(RecipeError, match=complaint):
        load_kind_recipe(path, [override], check=True)


def test_toitsu_train_stops_at_a_bad_argument_before_touching_data(tmp_path: Path) -> None:
    from toitsu.commands.train import train

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps(FACE_TINY))  # JSON is YAML
    run_dir = tmp_path / "run"
    args = argparse.Namespace(
        recipe=recipe, overrides=["model.widthz=[4, 8, 8, 16]"], run_dir=run_dir, no_resume=False, no_eval=False
    )
    with pytest.raises(SystemExit, match="widthz"):
        train(args)
    assert not run_dir.exists()


def test_untrained_evaluation_starts_from_the_weights_training_starts_from(tmp_path: Path, monkeypatch) -> None:
    from training.recipes import face
    from training.recipes.config import build_recipe
    from training.trainer.rng import seed_everything

    kind, recipe = KINDS["face"], build_recipe(FACE_TINY, FaceRecipe)
    seed_everything(recipe.trainer.seed)  # as train_face_recipe does before building
    expected = kind.modules(recipe)["encoder"].state_dict()
    seen: list[dict[str, torch.Tensor]] = []
    monkeypatch.setattr(face, "evaluate_face", lambda encoder, *a, **k: seen.append(encoder.state_dict()) or {})
    torch.manual_seed(12345)  # whatever the global RNG holds, evaluate_run reseeds
    kind.evaluate(recipe, None, tmp_path, name="untrained")
    assert len(seen) == 1 and all(torch.equal(seen[0][k], v) for k, v in expected.items())
