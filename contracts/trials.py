"""Verification trial lists: the type calibration (export) and evaluation (training) share.

``trials.txt`` holds one trial per line: ``LABEL ENROLLED_ID TEST_PATH`` with LABEL 1 (target)
or 0, the path relative to the list's folder (VoxCeleb's layout, with an id instead of a file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Trial:
    """One verification trial: does ``test`` come from enrolled ``speaker``?"""

    speaker: str
    test: Path
    target: bool


@dataclass(frozen=True)
class DevTrials:
    """A calibration dev set: enrollment files per identity and the full trial list."""

    name: str
    enrollments: dict[str, list[Path]]
    trials: list[Trial]


def format_trial(trial: Trial, root: Path) -> str:
    return f"{int(trial.target)} {trial.speaker} {trial.test.relative_to(root).as_posix()}"


def parse_trial(line: str, root: Path, known: dict[str, list[Path]], where: str) -> Trial:
    """One ``trials.txt`` line; ``known`` are the enrolled ids (a ValueError names ``where``)."""
    parts = line.split(maxsplit=2)
    if len(parts) != 3 or parts[0] not in ("0", "1") or parts[1] not in known:
        raise ValueError(f"{where}: bad trial line {line!r}")
    return Trial(speaker=parts[1], test=root / parts[2], target=parts[0] == "1")
