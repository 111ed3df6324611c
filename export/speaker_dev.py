"""The speaker dev set of the default pack and of trained speaker exports: generated speech
(espeak-ng pseudo-speakers, clean enrollment, test utterances through channel effects), and the
calibration hook that measures thresholds on it through the gateway's audio pipeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from contracts.card import AnyCard
from contracts.card_sections import Calibration
from contracts.trials import DevTrials
from export.calibration import Embed, calibrate
from export.pipeline import Calibrate
from training.data.speech_corpus import build_dev_trials

# (staged version folder, VAD version folder or None) → the gateway's embedding function for it.
EmbedderFactory = Callable[[Path, Path | None], Embed]
DEV_SPEAKERS, DEV_ENROLL, DEV_TEST = 64, 3, 4
PARITY_GENERATED_CLIPS = 12


def dev_trials(work_dir: Path) -> tuple[DevTrials, Path]:
    """The calibration dev set (built once under ``work_dir/dev-speech``, then cached)."""
    dev_dir = work_dir / "dev-speech"
    return build_dev_trials(dev_dir, DEV_SPEAKERS, DEV_ENROLL, DEV_TEST), dev_dir


def generated_clips(dev: DevTrials, count: int = PARITY_GENERATED_CLIPS) -> list[np.ndarray]:
    """Some dev utterances (half clean enrollment, half channel-affected tests) for parity checks."""
    import soundfile as sf

    tests: Sequence[Path] = sorted({t.test for t in dev.trials})[: count // 2]
    enrolls = [p for ps in dev.enrollments.values() for p in ps][: count // 2]
    return [sf.read(str(p), dtype="float32")[0] for p in [*tests, *enrolls]]


def speaker_calibrator(
    embedder_factory: EmbedderFactory, dev: DevTrials, dev_dir: Path, vad_dir: Path | None
) -> Calibrate:
    """The pipeline's calibration hook for a speaker version: thresholds measured as served."""

    def run(staged: Path, card: AnyCard) -> Calibration:
        print(f"{card.name}: calibrating on {dev.name} ({len(dev.trials)} trials)")
        return calibrate(embedder_factory(staged, vad_dir), dev, dev_dir, plot=staged / "det.png")

    return run
