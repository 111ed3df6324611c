"""The steps every speaker model version goes through after its graph is exported and checked:
calibration on the dev trial list through the gateway's own pipeline, the card, publication
(DESIGN §5). Shared by the default pack's importer and ``toitsu export RUN``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from export.calibration import Embed, calibrate
from export.card import write_card
from export.repository import publish
from training.data.speech_corpus import DevTrials, build_dev_trials

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


def calibrate_and_publish(staged: Path, card: dict, *, models_dir: Path, dev: DevTrials, dev_dir: Path,
                          embedder_factory: EmbedderFactory, vad_dir: Path | None, replace: bool = False) -> Path:
    """Calibrate the staged version as served, write its card, publish it; returns its folder."""
    write_card(staged, card)  # the embedder reads the card (input spec) before calibration exists
    print(f"{card['name']}: calibrating on {dev.name} ({len(dev.trials)} trials)")
    card["calibration"] = calibrate(embedder_factory(staged, vad_dir), dev, dev_dir, plot=staged / "det.png")
    print_calibration(card["calibration"])
    write_card(staged, card)
    return publish(staged, models_dir, card["name"], card["version"], replace=replace)


def print_parity(checks: Sequence[dict]) -> None:
    for p in checks:
        print(f"  parity {p['check']:<13} cases {p['cases']:>3}  max|Δ| {p['max_abs_diff']:.2e}  "
              f"min cos {p['min_cosine']:.6f}")


def print_calibration(cal: dict) -> None:
    print(f"  EER {cal['eer']:.2%} at {cal['eer_threshold']:.4f} "
          f"({cal['n_target']} target / {cal['n_nontarget']} non-target trials)")
    for t in cal["thresholds"]:
        print(f"  FAR {t['far']:<7g} threshold {t['threshold']:.4f}  FRR {t['frr']:.2%}")
    for d in cal["min_dcf"]:
        print(f"  minDCF(P_target={d['p_target']:g}) {d['value']:.4f}")
