"""Calibration from an injected embedder, on a tiny hand-made dev set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contracts.trials import DevTrials, Trial
from export.calibration import calibrate, trial_scores
from training.data.manifest import ManifestRecord, write_manifest


def _dev(tmp_path: Path, n_speakers: int = 40) -> tuple[DevTrials, dict[Path, np.ndarray]]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((n_speakers, 16))
    vectors, enrollments, tests, records = {}, {}, [], []
    for s in range(n_speakers):
        enrollments[f"s{s}"] = [tmp_path / f"s{s}-e{k}.wav" for k in range(2)]
        for p in enrollments[f"s{s}"]:
            vectors[p] = centres[s] + 0.3 * rng.standard_normal(16)
        test = tmp_path / f"s{s}-t.wav"
        vectors[test] = centres[s] + 0.6 * rng.standard_normal(16)
        tests.append(test)
        records.append(ManifestRecord(test, f"s{s}", 1.0, "test", {"effect": "noise" if s % 2 else "telephone"}))
    write_manifest(tmp_path / "manifest.jsonl", records)
    trials = [Trial(f"s{s}", t, t.name.startswith(f"s{s}-")) for s in range(n_speakers) for t in tests]
    return DevTrials("toy-dev", enrollments, trials), vectors


def test_scores_are_cosines_of_mean_templates_and_refused_files_are_left_out(tmp_path):
    dev, vectors = _dev(tmp_path)
    refused = dev.enrollments["s0"][0]

    def embed(paths):
        return np.stack([np.full(16, np.nan) if p == refused else vectors[p] for p in paths])

    scores, labels, tests, left_out = trial_scores(embed, dev)
    assert left_out == [refused] and len(scores) == len(dev.trials)
    template = vectors[dev.enrollments["s0"][1]]  # s0's template is its one usable enrollment
    test = vectors[dev.trials[0].test]
    expected = template @ test / np.linalg.norm(template) / np.linalg.norm(test)
    assert abs(scores[0] - expected) < 1e-9 and labels.sum() == 40


def test_calibration_section_has_thresholds_eer_and_a_det_plot(tmp_path):
    dev, vectors = _dev(tmp_path)
    section = card_json_section(
        calibrate(lambda paths: np.stack([vectors[p] for p in paths]), dev, tmp_path, plot=tmp_path / "det.png")
    )
    assert section["dev_trials"] == "toy-dev" and section["n_target"] == 40 and section["n_nontarget"] == 1560
    assert [t["far"] for t in section["thresholds"]] == [0.01, 0.001]  # 0.0001 needs 10,000 non-targets
    assert 0 <= section["eer"] < 0.5 and section["eer_by_group"]["by"] == "test_channel"
    assert set(section["eer_by_group"]["eer"]) == {"noise", "telephone"}
    assert (tmp_path / "det.png").stat().st_size > 10_000


def card_json_section(calibration) -> dict:
    """The section as ``card.json`` holds it."""
    return calibration.model_dump(mode="json", exclude_none=True)
