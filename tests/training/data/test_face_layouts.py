"""YouTube Faces and VoxCeleb face-track layouts → manifest rows, on small fake trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.face_layouts import build_face_layout_manifest, face_layout_records
from training.data.face_tracks import load_face_tracks


def _jpg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 20, 3), value, dtype=np.uint8)).save(path)


def test_youtube_faces_layout(tmp_path):
    db = tmp_path / "frame_images_DB"
    for person in ("Aaron_Eckhart", "Zoe_Ball"):
        for video in ("0", "3"):
            for frame in (555, 1000, 61):  # numeric order, not string order
                _jpg(db / person / video / f"{video}.{frame}.jpg", frame % 256)
    (db / "Aaron_Eckhart.labeled_faces.txt").write_text("ignored\n")
    records = face_layout_records(tmp_path, "youtube_faces")
    assert len(records) == 12 and {r.identity for r in records} == {"Aaron_Eckhart", "Zoe_Ball"}
    first = [r for r in records if r.extra["track"] == "Aaron_Eckhart/3"]
    assert [r.extra["frame"] for r in first] == [61, 555, 1000] and all(r.split == "train" for r in records)
    assert face_layout_records(db, "youtube_faces", max_frames_per_track=2)[0].extra["frame"] == 61
    assert len(face_layout_records(db, "youtube_faces", max_frames_per_track=2)) == 8
    with pytest.raises(FileNotFoundError, match="aligned_images_DB"):
        face_layout_records(tmp_path, "youtube_faces", aligned=True)


def test_aligned_youtube_faces_and_a_manifest_the_trainer_reads(tmp_path):
    db = tmp_path / "aligned_images_DB"
    for i, person in enumerate(("A", "B", "C", "D")):
        for video in ("0", "1"):
            for frame in (1, 2):
                _jpg(db / person / video / f"aligned_detect_{video}.{frame}.jpg", 40 * i)
    manifest = build_face_layout_manifest(
        tmp_path, tmp_path / "ytf.jsonl", "youtube_faces", aligned=True, heldout_fraction=0.5, seed=1
    )
    tracks = load_face_tracks(manifest, size=32)
    assert tracks.frames.shape == (16, 32, 32, 3) and len(tracks.track_names) == 8 and not tracks.has_quality
    held = set(tracks.identity[tracks.split == "heldout"].tolist())
    assert len(held) == 2 and not held & set(tracks.identity[tracks.split == "train"].tolist())


def test_voxceleb_face_tracks_both_layouts(tmp_path):
    plain = tmp_path / "plain"
    for track in ("00001", "00002"):
        for n in (1, 2, 10):
            _jpg(plain / "id10001" / "1zcIwhmdeo4" / track / f"{n:04d}.jpg", n)
    _jpg(plain / "id10002" / "abc" / "00001" / "0001.jpg", 9)
    records = face_layout_records(plain, "voxceleb")
    assert len(records) == 7 and records[0].extra == {
        "track": "id10001/1zcIwhmdeo4/00001",
        "video": "1zcIwhmdeo4",
        "frame": 1,
    }
    assert [r.extra["frame"] for r in records[:3]] == [1, 2, 10]
    interval = tmp_path / "unzippedIntervalFaces"
    for name in ("A.J._Buckley", "Aaron_Tveit"):
        _jpg(interval / "data" / name / "1.6" / "vid1" / "1" / "01.jpg", 1)
        _jpg(interval / "data" / name / "1.6" / "vid1" / "2" / "01.jpg", 2)
    records = face_layout_records(interval, "voxceleb")
    assert [r.extra["track"] for r in records] == [
        "A.J._Buckley/vid1/1",
        "A.J._Buckley/vid1/2",
        "Aaron_Tveit/vid1/1",
        "Aaron_Tveit/vid1/2",
    ]
    with pytest.raises(FileNotFoundError, match="no face frames"):
        face_layout_records(tmp_path / "plain" / "id10002" / "abc" / "00001", "voxceleb")
