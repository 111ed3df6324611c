"""Recipe kinds and the ``KINDS`` registry: what ``toitsu train | eval | export`` look up (DESIGN §4).

A recipe's top-level ``kind`` names its entry; a recipe without the key is a speaker recipe (the
speaker schema predates the key and has no such field). Each ``Kind`` supplies the recipe
dataclass (its strict schema), ``modules`` (the model and loss / head built from the recipe
alone, so that a bad constructor argument is an error at load), ``train`` and ``evaluate``, and
the one-line summaries the CLI prints. ``KINDS`` is a plain dict; importing it builds nothing.

Export is deliberately absent: training never imports export (DESIGN §1), so the export side
keys its own pipeline by ``Kind.name``.

Each kind is one recipe module supplying these entry points plus one line in ``KINDS``:
``generative`` holds the VAEs of METHODS §6; ``disentangle`` the group-block VAE of §7;
``audio-visual`` (METHODS §8) trains a voice student from a face teacher's batch choices
(``training.recipes.audio_visual``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from training.recipes import audio_visual, disentangle, face, generative, sound, sound_eval, speaker, speaker_training
from training.recipes.config import RecipeError, apply_overrides, build_recipe, read_recipe_yaml

DEFAULT_KIND = "speaker"


class TrainFn(Protocol):
    """Train ``recipe`` into ``run_dir``; returns what it writes to ``run_dir/run.json``."""

    def __call__(self, recipe: Any, run_dir: Path, *, resume: bool = True, evaluate: bool = True) -> dict[str, Any]: ...


class EvaluateFn(Protocol):
    """The report of a run (``run_dir``) or, with ``run_dir`` None, of the recipe's untrained model."""

    def __call__(self, recipe: Any, run_dir: Path | None, out_dir: Path, *, name: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Kind:
    """One recipe kind. ``describe_run(eval)`` summarises a run's ``eval`` for ``toitsu train``;
    ``describe_report(report, out_dir)`` a report for ``toitsu eval``."""

    name: str
    recipe: type
    modules: Callable[[Any], dict[str, nn.Module]]
    train: TrainFn
    evaluate: EvaluateFn
    describe_run: Callable[[Mapping[str, Any]], str]
    describe_report: Callable[[Mapping[str, Any], Path], str]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _speaker_run(r: Mapping[str, Any]) -> str:
    return f"held-out EER {r['eer']:.2%} ({r['trials']} trials), minDCF(0.01) {r['min_dcf']['0.01']['value']:.3f}"


def _speaker_report(r: Mapping[str, Any], out: Path) -> str:
    return (
        f"EER {r['eer']:.2%} on {r['trials']} trials, minDCF(0.01) {r['min_dcf']['0.01']['value']:.3f}, "
        f"minDCF(0.05) {r['min_dcf']['0.05']['value']:.3f}; report and DET plot in {out}"
    )


def _sound_run(r: Mapping[str, Any]) -> str:
    return f"accuracy {r['accuracy']:.2%} on {r['data']}"


def _sound_report(r: Mapping[str, Any], out: Path) -> str:
    return (
        f"accuracy {r['accuracy']:.2%} (balanced {r['balanced_accuracy']:.2%}) on {r['data']}; "
        f"report and confusion matrix in {out}"
    )


def _face_run(r: Mapping[str, Any]) -> str:
    return f"held-out EER {r['eer']:.2%} (low vs low {_percent(r['eer_low_low'])}) on {r['frames']} frames"


def _face_report(r: Mapping[str, Any], out: Path) -> str:
    return (
        f"EER {_percent(r['eer'])}, low vs low {_percent(r['eer_low_low'])}, high vs high "
        f"{_percent(r['eer_high_high'])} on {r['frames']} held-out frames; report in {out}"
    )


def _generative_run(r: Mapping[str, Any]) -> str:
    accuracy = r["requested_class_accuracy"]
    return f"requested-class accuracy {accuracy:.2%}, FID {r['fid']:.3f}, test ELBO {r['test_elbo']:.2f}"


def _generative_report(r: Mapping[str, Any], out: Path) -> str:
    return (
        f"requested-class accuracy {r['requested_class_accuracy']:.2%} ({r['samples_per_class']} per class), "
        f"FID {r['fid']:.3f}, KID {r['kid']:.4f}, test ELBO {r['test_elbo']:.2f} nats; "
        f"report and one PNG grid per class in {out}"
    )


def _disentangle_run(r: Mapping[str, Any]) -> str:
    nmi = "" if r["nmi"] is None else f", head purity {r['purity']:.2%}, NMI {r['nmi']:.3f}"
    return f"MIG {r['mig']:.3f} on the merged groups{nmi}"


def _disentangle_report(r: Mapping[str, Any], out: Path) -> str:
    groups = ", ".join(f"{k} {v:.3f}" for k, v in r["mig_by_group"].items())
    return f"{_disentangle_run(r)} (by group: {groups}); report and latent traversal PNGs in {out}"


# Order matters only for messages ("expected one of speaker, sound, face").
KINDS: dict[str, Kind] = {
    "speaker": Kind(
        "speaker",
        speaker.SpeakerRecipe,
        speaker_training.build_modules,
        speaker_training.train_recipe,
        speaker_training.evaluate_run,
        _speaker_run,
        _speaker_report,
    ),
    "sound": Kind(
        "sound",
        sound.SoundRecipe,
        sound.build_modules,
        sound.train_sound_recipe,
        sound_eval.evaluate_run,
        _sound_run,
        _sound_report,
    ),
    "face": Kind(
        "face", face.FaceRecipe, face.build_modules, face.train_face_recipe, face.evaluate_run, _face_run, _face_report
    ),
    "generative": Kind(
        "generative",
        generative.GenerativeRecipe,
        generative.build_modules,
        generative.train_generative_recipe,
        generative.evaluate_run,
        _generative_run,
        _generative_report,
    ),
    "disentangle": Kind(
        "disentangle",
        disentangle.DisentangleRecipe,
        disentangle.build_modules,
        disentangle.train_disentangle_recipe,
        disentangle.evaluate_run,
        _disentangle_run,
        _disentangle_report,
    ),
    "audio-visual": Kind(
        "audio-visual",
        audio_visual.AudioVisualRecipe,
        audio_visual.build_modules,
        audio_visual.train_av_recipe,
        audio_visual.evaluate_run,
        _speaker_run,
        _speaker_report,
    ),
}


def load_kind_recipe(
    path: str | os.PathLike[str], overrides: Sequence[str] = (), *, check: bool = False
) -> tuple[Kind, Any]:
    """(kind, recipe dataclass) of the recipe file at ``path`` with ``overrides`` applied.

    ``check`` also builds the recipe's modules (``check_modules``). Raises ``RecipeError``.
    """
    data = apply_overrides(read_recipe_yaml(path), overrides)
    name = data.get("kind", DEFAULT_KIND)
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise RecipeError([f"kind: expected one of {', '.join(KINDS)}, got {name!r}"], str(path))
    if "kind" not in {f.name for f in dataclasses.fields(kind.recipe)}:
        data.pop("kind", None)  # a schema without the key (speaker) still accepts `kind: speaker`
    recipe: Any = build_recipe(data, kind.recipe, source=str(path))
    if check:
        check_modules(kind, recipe, str(path))
    return kind, recipe


def check_modules(kind: Kind, recipe: Any, source: str = "recipe") -> dict[str, nn.Module]:
    """The recipe's modules, built from the recipe alone; a constructor's complaint (a misspelt or
    out-of-range model / method argument) becomes a ``RecipeError`` naming the recipe."""
    try:
        return kind.modules(recipe)
    except (TypeError, ValueError) as exc:
        raise RecipeError([f"its modules do not build: {exc}"], source) from exc
