"""Calibrating a sound model's open-set decision (``SoundService.Classify``'s "unknown").

The dev protocol mirrors the speaker one on generated everyday sounds
(``training/data/sound_corpus.py``: 12 classes, reverb and background noise per clip): each
class is enrolled from ``ENROLL`` clips (prototype = L2-normalised mean, as the gallery builds
it), every other clip is a probe, and each probe is scored against every prototype — a target
trial for its own class, a non-target one for the 11 others. A threshold at FAR f accepts a
clip of a class as another class with probability f; thresholds, EER and minDCF go into the card
through ``export.calibration.calibrate``, with the EER per probe class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.card import AnyCard
from contracts.card_sections import Calibration
from contracts.trials import DevTrials, Trial
from export.calibration import Embed, calibrate
from export.pipeline import Calibrate
from training.data.manifest import read_manifest

if TYPE_CHECKING:
    from training.data.sound_corpus import SoundCorpusSettings

DEV: SoundCorpusSettings = {"clips_per_class": 30, "clip_seconds": 3.0, "n_folds": 5, "seed": 2025}
ENROLL = 3


def sound_dev_trials(work_dir: Path, sample_rate: int) -> tuple[DevTrials, Path]:
    """The dev trials (built once under ``work_dir/dev-sounds-<rate>``, then cached)."""
    from training.data.sound_corpus import build_sound_corpus

    out = work_dir / f"dev-sounds-{sample_rate}"
    manifest = Path(
        build_sound_corpus(out, DEV["clips_per_class"], DEV["clip_seconds"], sample_rate, DEV["n_folds"], DEV["seed"])
    )
    by_class: dict[str, list[Path]] = {}
    for record in sorted(read_manifest(manifest), key=lambda r: str(r.path)):
        by_class.setdefault(str(record.identity), []).append(Path(record.path))
    enrollments = {label: paths[:ENROLL] for label, paths in by_class.items()}
    probes = [(label, p) for label, paths in by_class.items() for p in paths[ENROLL:]]
    trials = [Trial(speaker=cls, test=path, target=cls == label) for cls in by_class for label, path in probes]
    name = f"synthetic-sounds-dev-{len(by_class)}cls-{ENROLL}e-seed{DEV['seed']}"
    return DevTrials(name=name, enrollments=enrollments, trials=trials), out


def sound_calibrator(embedder_factory: Callable[[Path, Path | None], Embed], work_dir: Path) -> Calibrate:
    """The ``calibrate`` hook of ``export.trained_sound.export_sound_run``: staged folder + card →
    the card's ``calibration`` section, measured through the gateway's pipeline (no VAD)."""

    def run(staged: Path, card: AnyCard) -> Calibration:
        if card.sample_rate is None:
            raise ValueError(f"{card.name}: a sound card needs audio.sample_rate")
        dev, dev_dir = sound_dev_trials(work_dir, card.sample_rate)
        print(f"{card.name}: calibrating on {dev.name} ({len(dev.trials)} trials)")
        section = calibrate(
            embedder_factory(staged, None),
            dev,
            dev_dir,
            plot=staged / "det.png",
            group_field="identity",
            group_name="probe_class",
        )
        section.enrollment = f"L2-normalised mean of {ENROLL} clips per class"
        return section

    return run
