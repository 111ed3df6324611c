"""The face dev set of ``export/face_calibration.py``: scenes made from the corpus's uncut frames
(so the served pipeline aligns the faces itself), cached, and redone when the corpus changes."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from export import face_calibration
from training.data import face_tracks
from training.data.manifest import read_manifest

SMALL_DEV = {"identities": 3, "tracks": 2, "frames": 2, "seed": 5, "scene": 256}


def test_dev_scenes_come_from_uncut_frames_and_follow_the_corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(face_calibration, "DEV", SMALL_DEV)
    dev, root = face_calibration.face_dev_trials(tmp_path)
    assert len(dev.enrollments) == 3 and len(dev.trials) == 3 * 3 * 2  # every identity × every t01 frame
    scenes = read_manifest(root / "manifest.jsonl")
    assert len(scenes) == 12 and "uncut" not in scenes[0].extra and scenes[0].extra["track"].endswith("/t00")
    crops = {(r.extra["track"], r.extra["frame"]): r for r in read_manifest(root / "crops" / "manifest.jsonl")}
    for scene in (r for r in scenes if r.identity == "astronaut"):
        with Image.open(scene.path) as img:
            pixels = np.asarray(img.convert("RGB"))
        with Image.open(root / "crops" / crops[scene.extra["track"], scene.extra["frame"]].extra["uncut"]) as img:
            frame = np.asarray(img.convert("RGB"))
        # Almost all of the scene is the (scaled) uncut frame: its colours, not the scene's noise.
        assert pixels.shape == (256, 256, 3) and frame.shape == (336, 336, 3)
        assert np.abs(np.median(pixels, axis=(0, 1)) - np.median(frame, axis=(0, 1))).max() < 12
    stamp = json.loads((root / "scenes.json").read_text())
    assert stamp["frames_build"]["builder_version"] == face_tracks._BUILD_VERSION
    before = scenes[0].path.stat().st_mtime_ns
    face_calibration.face_dev_trials(tmp_path)
    assert scenes[0].path.stat().st_mtime_ns == before  # cached
    monkeypatch.setattr(face_tracks, "_BUILD_VERSION", face_tracks._BUILD_VERSION + 100)
    face_calibration.face_dev_trials(tmp_path)  # a new corpus builder redoes the scenes too
    assert (
        json.loads((root / "scenes.json").read_text())["frames_build"]["builder_version"]
        > stamp["frames_build"]["builder_version"]
    )
    assert scenes[0].path.stat().st_mtime_ns != before
