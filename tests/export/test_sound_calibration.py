"""Sound calibration runs on the real-use dev set its config describes (issue 12): the shipped
config is what calibration reads, the dev clips carry the conditions it asks for, and the card's
calibration section counts the trials of that set."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml

from contracts.card import load_card
from export.sound_calibration import DEV_CONFIG, SoundDevSet, load_dev_set, sound_calibrator
from export.trained_sound import export_sound_run
from tests.export.test_trained_sound import TINY
from training.data.channel_effects import read_wav
from training.data.manifest import read_manifest
from training.data.real_use import RealUse
from training.data.sound_corpus import SOUND_CLASSES
from training.recipes.config import build_recipe
from training.recipes.sound import SoundRecipe, train_sound_recipe


def test_the_shipped_dev_config_is_what_calibration_reads_and_covers_every_condition():
    raw = yaml.safe_load(DEV_CONFIG.read_text())
    loaded = load_dev_set()
    assert dataclasses.asdict(loaded) == raw
    conditions = RealUse.from_config(loaded.real_use)
    # Real use: every condition of issue 12 can occur, and noise on most clips.
    assert min(conditions.pitch_p, conditions.tempo_p, conditions.reverb_p, conditions.band_p) > 0
    assert conditions.noise_p >= 0.5 and 0 < conditions.telephone_share < 1


def _onnx_embedder(staged, vad_dir):
    from export.parity import onnx_session

    assert vad_dir is None  # sounds are calibrated without the VAD, as served
    session = onnx_session(staged / "model.onnx")

    def embed(paths):
        rows = []
        for p in paths:
            x, _ = read_wav(p)
            feed = {"waveform": x[None].astype(np.float32), "lengths": np.array([x.size], dtype=np.int64)}
            rows.append(session.run(None, feed)[0][0])
        return np.stack(rows)

    return embed


def test_calibration_uses_the_matched_dev_set(tmp_path):
    run_dir, work_dir = tmp_path / "run", tmp_path / "work"
    train_sound_recipe(build_recipe(TINY, SoundRecipe), run_dir)
    settings = SoundDevSet(
        clips_per_class=4,
        clip_seconds=0.5,
        seed=5,
        enroll=2,
        real_use={"noise_p": 1.0, "snr_db": [3.0, 4.0], "band_p": 1.0, "telephone_share": 1.0, "tempo_p": 1.0},
    )
    version = export_sound_run(
        run_dir, tmp_path / "models", work_dir, calibrate=sound_calibrator(_onnx_embedder, work_dir, settings)
    )
    calibration = load_card(version).calibration
    n = len(SOUND_CLASSES)
    assert calibration.dev_trials == f"real-use-sounds-dev-{n}cls-2e-seed5"
    assert (calibration.n_target, calibration.n_nontarget) == (n * 2, n * (n - 1) * 2)
    assert calibration.enrollment == "L2-normalised mean of 2 clips per class"
    records = read_manifest(work_dir / "dev-sounds-real-use-16000" / "manifest.jsonl")
    assert len(records) == n * 4
    for r in records:
        assert 3.0 <= r.extra["snr_db"] <= 4.0 and r.extra["band"] in ("telephone", "telephone-mulaw")
        assert r.extra["tempo"] is not None
    build = json.loads((work_dir / "dev-sounds-real-use-16000" / "build.json").read_text())
    assert build["args"]["conditions"] == json.loads(
        json.dumps(dataclasses.asdict(RealUse.from_config(settings.real_use)))
    )
    with pytest.raises(Exception, match="enrol"):
        load_dev_set_with_typo(tmp_path)


def load_dev_set_with_typo(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEV_CONFIG.read_text().replace("enroll:", "enrol:"))
    return load_dev_set(bad)
