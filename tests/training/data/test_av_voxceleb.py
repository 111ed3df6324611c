"""The VoxCeleb2 dev audio-visual loader on a fake tree (per-clip crops, per-video frames, gaps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from training.data.av_corpus import clip_frames, oracle_path, read_oracle
from training.data.av_voxceleb import build_voxceleb2_av_manifest
from training.data.manifest import read_manifest


def _wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)


def _jpg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 128, dtype=np.uint8)).save(path)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "vox2"
    audio, frames = root / "dev" / "wav", root / "dev" / "frames"
    # id00012: per-clip crop folders; id00015: one frame folder per video; one clip has no face.
    for clip in ("00001", "00002"):
        _wav(audio / "id00012" / "abcDEF12345" / f"{clip}.wav", 1.5)
        for f in range(3):
            _jpg(frames / "id00012" / "abcDEF12345" / clip / f"{f:04d}.jpg")
    _wav(audio / "id00015" / "zzzYYY00000" / "00001.wav", 2.0)
    for f in range(2):
        _jpg(frames / "id00015" / "zzzYYY00000" / f"{f:04d}.png")
    _wav(audio / "id00015" / "noFace00000" / "00001.wav", 2.0)
    (audio / "id00015" / "zzzYYY00000" / "notes.txt").write_text("not audio")
    return root


def test_clips_get_their_frames_audio_and_no_identity(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "m" / "vox2-av.jsonl"
    with pytest.warns(UserWarning, match="1 clips"):
        manifest = build_voxceleb2_av_manifest(tree, out)
    records = read_manifest(manifest)
    assert [r.extra["clip"] for r in records] == ["abcDEF12345/00001", "abcDEF12345/00002", "zzzYYY00000/00001"]
    assert all(r.identity is None for r in records)
    for line in manifest.read_text().splitlines():  # the layout's paths hold speaker ids; no field does
        fields = {k: v for k, v in json.loads(line).items() if k not in ("path", "frames")}
        assert "id000" not in json.dumps(fields)
    assert read_oracle(manifest) == {
        "abcDEF12345/00001": "id00012",
        "abcDEF12345/00002": "id00012",
        "zzzYYY00000/00001": "id00015",
    }
    assert oracle_path(manifest).name == "vox2-av.oracle.json"
    first = clip_frames(records[0], manifest)
    assert first == [tree / "dev/frames/id00012/abcDEF12345/00001" / f"{f:04d}.jpg" for f in range(3)]
    assert clip_frames(records[2], manifest) == [
        tree / "dev/frames/id00015/zzzYYY00000" / f"{f:04d}.png" for f in range(2)
    ]
    assert records[0].duration == pytest.approx(1.5)
    assert records[0].extra["video"] == "abcDEF12345"
    assert json.loads(oracle_path(manifest).read_text())["speakers"] == ["id00012", "id00015"]


def test_missing_folders_are_named(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="crops"):
        build_voxceleb2_av_manifest(tree, tmp_path / "a.jsonl", frames="crops")
    with pytest.raises(FileNotFoundError, match="dev/aac or dev/wav"):
        build_voxceleb2_av_manifest(tmp_path, tmp_path / "b.jsonl")
