"""Calibration: decision thresholds measured on a dev trial list, for the model card (DESIGN §2).

Templates are built as the gallery builds them (L2-normalised mean of the enrollment
embeddings), scores are cosines, and thresholds follow the accept-if-score-≥-threshold rule of
``training/evaluation/verification.py``. The embedding function is injected: the CLI passes one
that runs the gateway's own audio pipeline (``serving/offline.py``), so the thresholds hold for
audio as the server will see it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from contracts.card_sections import Calibration, FarThreshold, GroupEer, MinDcf
from contracts.score_norm import as_norm
from contracts.trials import DevTrials
from training.data.manifest import read_manifest
from training.evaluation.verification import plot_det, verification_report

# files → [N, D] embeddings; a NaN row marks a file the serving pipeline refuses (no speech, …).
Embed = Callable[[Sequence[Path]], np.ndarray]
FARS = (0.01, 0.001, 0.0001)
P_TARGETS = (0.01, 0.05)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# (cohort [C, D] unit rows, top_n): scores are AS-normalised as the gateway's "as-norm" scoring does.
CohortArg = tuple[np.ndarray, int] | None


def trial_scores(
    embed: Embed, dev: DevTrials, cohort: CohortArg = None
) -> tuple[np.ndarray, np.ndarray, list[Path], list[Path]]:
    """Cosine (or, with ``cohort``, AS-norm) score and label (1 = target) of every usable trial,
    its test file, and the files the pipeline refused (left out as the server would refuse them)."""
    paths = [*{p: None for ps in dev.enrollments.values() for p in ps}, *sorted({t.test for t in dev.trials})]
    vectors = embed(paths)
    usable = {p: v for p, v in zip(paths, vectors) if np.all(np.isfinite(v))}
    refused = [p for p in paths if p not in usable]
    templates = {}
    for speaker, enroll in dev.enrollments.items():
        kept = [usable[p] for p in enroll if p in usable]
        if kept:
            templates[speaker] = _unit(np.mean(kept, axis=0))
    trials = [t for t in dev.trials if t.speaker in templates and t.test in usable]
    scores = np.array([float(templates[t.speaker] @ _unit(usable[t.test])) for t in trials])
    if cohort is not None and trials:
        enroll_rows = np.stack([templates[t.speaker] for t in trials])
        test_rows = np.stack([_unit(usable[t.test]) for t in trials])
        scores = as_norm(scores, enroll_rows, test_rows, cohort[0], cohort[1]).astype(np.float64)
    labels = np.array([t.target for t in trials], dtype=bool)
    return scores, labels, [t.test for t in trials], refused


def calibrate(
    embed: Embed,
    dev: DevTrials,
    dev_dir: Path,
    plot: Path | None = None,
    *,
    group_field: str = "effect",
    group_name: str = "test_channel",
    cohort: CohortArg = None,
) -> Calibration:
    """The card's ``calibration`` section; ``plot`` gets a DET curve overall and per group of test
    files, a group being the value of ``group_field`` in the dev manifest ("identity" or an
    ``extra`` key; speakers: the channel effect of the test utterance). With ``cohort`` the scores,
    thresholds and plot are those of AS-norm (``score: "as-norm"``)."""
    scores, labels, tests, refused = trial_scores(embed, dev, cohort)
    report = verification_report(scores, labels, fars=FARS, p_targets=P_TARGETS)
    groups = _group(scores, labels, tests, _group_of(dev_dir, group_field))
    if plot is not None:
        kind = " (AS-norm)" if cohort is not None else ""
        plot_det(plot, {"all": (scores, labels), **groups}, title=f"DET on {dev.name}{kind}")
    return Calibration(
        dev_trials=dev.name,
        n_target=report.n_target,
        n_nontarget=report.n_nontarget,
        eer=report.eer,
        eer_threshold=report.eer_threshold,
        min_dcf=[MinDcf(p_target=p, value=v, threshold=t) for p, (v, t) in report.min_dcf.items()],
        thresholds=[
            FarThreshold(far=f, threshold=t, frr=report.frr_at_far[f]) for f, t in report.thresholds_at_far.items()
        ],
        score="as-norm" if cohort is not None else "cosine",
        enrollment="L2-normalised mean of the clean enrollment utterances",
        refused_files=[p.name if p.parent is None else f"{p.parent.name}/{p.name}" for p in refused],
        eer_by_group=GroupEer(
            by=group_name, eer={name: verification_report(s, y, fars=()).eer for name, (s, y) in groups.items()}
        ),
        det_plot=plot.name if plot is not None else None,
    )


def _group_of(dev_dir: Path, field: str) -> dict[Path, str]:
    records = read_manifest(dev_dir / "manifest.jsonl")
    if field == "identity":
        return {Path(r.path): str(r.identity) for r in records}
    return {Path(r.path): str(r.extra.get(field, "unknown")) for r in records}


def _group(
    scores: np.ndarray, labels: np.ndarray, tests: list[Path], group_of: dict[Path, str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    names = np.array([group_of.get(p, "unknown") for p in tests])
    groups = {}
    for name in sorted(set(names)):
        mask = names == name
        if labels[mask].any() and (~labels[mask]).any():
            groups[name] = (scores[mask], labels[mask])
    return groups
