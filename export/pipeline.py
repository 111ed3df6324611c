"""The one export pipeline every model goes through (DESIGN §5), imported or trained, any kind:

    stage (ONNX or other model file → parity, failing above tolerance → typed card)
      → card written (the calibration embedder reads the staged card's input spec)
      → calibration on a dev trial list, through the gateway's own pipeline (embedding kinds)
      → card written again → publish (an atomic rename, then ``config.pbtxt``).

A version is assembled in a private staging folder and published with one rename, so an
interrupted export never leaves half a version where the gateway looks.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from contracts.card import AnyCard, write_card
from contracts.card_sections import Calibration, ParityCheck
from export.repository import publish, staging_dir

# The staging folder → the staged model's card (its files written there, parity checked).
Stage = Callable[[Path], AnyCard]
# (the staging folder, its card) → the card's calibration section.
Calibrate = Callable[[Path, AnyCard], Calibration]


def export_version(
    models_dir: Path,
    name: str,
    version: int,
    stage: Stage,
    calibrate: Calibrate | None = None,
    *,
    replace: bool = False,
    triton_options: Mapping[str, Any] | None = None,
    keep_triton_config: bool = True,
) -> Path:
    """Run the pipeline for ``name`` v``version``; returns the published version folder."""
    staged = staging_dir(models_dir, name, version)
    try:
        card = stage(staged)
        if (card.name, card.version) != (name, version):
            raise ValueError(f"staged card is {card.name} v{card.version}, expected {name} v{version}")
        print_parity(card)
        write_card(staged, card)
        if calibrate is not None:
            calibration = calibrate(staged, card)
            card.calibration = calibration  # type: ignore[union-attr]  # embedding cards only
            print_calibration(calibration)
            write_card(staged, card)
        published = publish(staged, models_dir, name, version, replace=replace, triton_options=triton_options)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if not keep_triton_config:  # a model the gateway runs itself (landmarks) has no Triton config
        (models_dir / name / "config.pbtxt").unlink(missing_ok=True)
    return published


def print_parity(card: AnyCard | Sequence[ParityCheck]) -> None:
    checks = card if isinstance(card, Sequence) else (card.parity.checks if card.parity else [])
    for p in checks:
        print(f"  parity {p.check:<13} cases {p.cases:>3}  max|Δ| {p.max_abs_diff:.2e}  min cos {p.min_cosine:.6f}")


def print_calibration(cal: Calibration) -> None:
    print(
        f"  EER {cal.eer:.2%} at {cal.eer_threshold:.4f} ({cal.n_target} target / {cal.n_nontarget} non-target trials)"
    )
    for t in cal.thresholds:
        print(f"  FAR {t.far:<7g} threshold {t.threshold:.4f}  FRR {t.frr:.2%}")
    for d in cal.min_dcf:
        print(f"  minDCF(P_target={d.p_target:g}) {d.value:.4f}")
