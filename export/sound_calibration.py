"""Calibrating a sound model's open-set decision (``SoundService.Classify``'s "unknown").

The dev protocol mirrors the speaker one on generated everyday sounds under the conditions of
real use (``DEV_CONFIG``, ``recipes/sound/dev/real-use.yaml``: the 12 classes of
``training/data/sound_corpus.py`` rendered by ``training/data/real_use.py`` through pitch and
tempo changes, rooms, noise and band limits — calibrating on the plain corpus accepted only 18% of
real known-class probes, issue 12): each class is enrolled from ``enroll`` clips (prototype =
L2-normalised mean, as the gallery builds it), every other clip is a probe, and each probe is
scored against every prototype — a target trial for its own class, a non-target one for the 11
others. A threshold at FAR f accepts a clip of a class as another class with probability f;
thresholds, EER and minDCF go into the card through ``export.calibration.calibrate``, with the
EER per probe class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.card import AnyCard
from contracts.card_sections import Calibration
from contracts.trials import DevTrials, Trial
from export.calibration import Embed, calibrate
from export.pipeline import Calibrate
from training.data.manifest import read_manifest

DEV_CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "sound" / "dev" / "real-use.yaml"


@dataclass(frozen=True)
class SoundDevSet:
    """A dev set's settings (the YAML at ``DEV_CONFIG``, read strictly)."""

    clips_per_class: int = 20
    clip_seconds: float = 3.0
    n_folds: int = 5
    seed: int = 2025
    enroll: int = 3
    real_use: dict[str, Any] = field(default_factory=dict)  # training.data.real_use.RealUse fields


def load_dev_set(path: Path = DEV_CONFIG) -> SoundDevSet:
    """The dev-set settings at ``path``."""
    from training.recipes.config import load_recipe

    return load_recipe(path, schema=SoundDevSet)


def sound_dev_trials(work_dir: Path, sample_rate: int, settings: SoundDevSet | None = None) -> tuple[DevTrials, Path]:
    """The dev trials (built once under ``work_dir/dev-sounds-real-use-<rate>``, then cached)."""
    from training.data.real_use import RealUse, build_real_use_corpus
    from training.data.sound_corpus import SOUND_CLASSES

    d = load_dev_set() if settings is None else settings
    out = work_dir / f"dev-sounds-real-use-{sample_rate}"
    manifest = build_real_use_corpus(
        out,
        SOUND_CLASSES,
        RealUse.from_config(d.real_use),
        clips_per_class=d.clips_per_class,
        clip_seconds=d.clip_seconds,
        sample_rate=sample_rate,
        n_folds=d.n_folds,
        seed=d.seed,
    )
    name = f"real-use-sounds-dev-{len(SOUND_CLASSES)}cls-{d.enroll}e-seed{d.seed}"
    return manifest_trials(manifest, d.enroll, name), out


def manifest_trials(manifest: Path, enroll: int, name: str) -> DevTrials:
    """Every class of ``manifest`` enrolled from its first ``enroll`` clips (by path); every other
    clip a probe against every class (target for its own)."""
    by_class: dict[str, list[Path]] = {}
    for record in sorted(read_manifest(manifest), key=lambda r: str(r.path)):
        by_class.setdefault(str(record.identity), []).append(Path(record.path))
    enrollments = {label: paths[:enroll] for label, paths in by_class.items()}
    probes = [(label, p) for label, paths in by_class.items() for p in paths[enroll:]]
    trials = [Trial(speaker=cls, test=path, target=cls == label) for cls in by_class for label, path in probes]
    return DevTrials(name=name, enrollments=enrollments, trials=trials)


def sound_calibrator(
    embedder_factory: Callable[[Path, Path | None], Embed], work_dir: Path, settings: SoundDevSet | None = None
) -> Calibrate:
    """The ``calibrate`` hook of ``export.trained_sound.export_sound_run``: staged folder + card →
    the card's ``calibration`` section, measured through the gateway's pipeline (no VAD) on the
    real-use dev set of ``settings`` (default: ``DEV_CONFIG``)."""
    d = load_dev_set() if settings is None else settings

    def run(staged: Path, card: AnyCard) -> Calibration:
        if card.sample_rate is None:
            raise ValueError(f"{card.name}: a sound card needs audio.sample_rate")
        dev, dev_dir = sound_dev_trials(work_dir, card.sample_rate, d)
        print(f"{card.name}: calibrating on {dev.name} ({len(dev.trials)} trials)")
        section = calibrate(
            embedder_factory(staged, None),
            dev,
            dev_dir,
            plot=staged / "det.png",
            group_field="identity",
            group_name="probe_class",
        )
        section.enrollment = f"L2-normalised mean of {d.enroll} clips per class"
        return section

    return run
