"""VoxCeleb builders on a small fake tree in the official layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.manifest import read_manifest
from training.data.voxceleb import (
    TRIAL_LISTS,
    VerificationTrial,
    build_voxceleb_manifest,
    read_trial_list,
    trial_speakers,
)

VOX1 = {
    "id10001": {"1zcIwhmdeo4": 2, "7gWzIy6yIIk": 1},
    "id10002": {"6WO410QOeuo": 2},
    "id10270": {"x6uYqmx31kE": 2, "8jEAjG6SegY": 1},
}


def _tiny_wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * 16000), dtype=np.int16), 16000, subtype="PCM_16")


@pytest.fixture()
def vox1(tmp_path: Path) -> Path:
    root = tmp_path / "voxceleb1"
    for speaker, videos in VOX1.items():
        for video, count in videos.items():
            for n in range(count, 0, -1):  # written out of order: the builder sorts
                _tiny_wav(root / "wav" / speaker / video / f"{n:05d}.wav", 0.1 * n)
    (root / "wav" / "id10001" / "readme.txt").write_text("not audio at the wrong depth")
    (root / "wav" / "id10001" / "1zcIwhmdeo4" / "notes.txt").write_text("not audio")
    return root


def test_vox1_manifest_is_sorted_with_speaker_video_and_duration(vox1: Path, tmp_path: Path) -> None:
    out = build_voxceleb_manifest(vox1, tmp_path / "m" / "vox1.jsonl", dataset="vox1", progress=False)
    records = read_manifest(out)
    keys = [r.extra["key"] for r in records]
    assert keys == sorted(keys) and len(keys) == 8
    assert keys[:3] == [
        "id10001/1zcIwhmdeo4/00001.wav",
        "id10001/1zcIwhmdeo4/00002.wav",
        "id10001/7gWzIy6yIIk/00001.wav",
    ]
    for r in records:
        speaker, video, _ = r.extra["key"].split("/")
        assert r.identity == speaker and r.extra["video"] == video and r.split == "train"
        assert r.path == vox1 / "wav" / r.extra["key"] and r.extra["dataset"] == "vox1"
        assert r.duration == pytest.approx(0.1 * int(r.path.stem), abs=1e-4)
    # Deterministic: a second build writes the same bytes.
    again = build_voxceleb_manifest(vox1, tmp_path / "m" / "again.jsonl", dataset="vox1", progress=False)
    assert again.read_bytes() == out.read_bytes()
    # Test speakers can be left out, by id.
    train = read_manifest(
        build_voxceleb_manifest(
            vox1, tmp_path / "t.jsonl", dataset="vox1", exclude_speakers={"id10270"}, progress=False
        )
    )
    assert {r.identity for r in train} == {"id10001", "id10002"}


def test_vox2_layout_with_m4a_and_converted_wav(tmp_path: Path) -> None:
    root = tmp_path / "voxceleb2"
    for speaker, video in (("id00012", "21Uxsk56VDQ"), ("id00015", "0fijmz4vTVU")):
        folder = root / "dev" / "aac" / speaker / video
        folder.mkdir(parents=True)
        (folder / "00001.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A ")  # header only
    records = read_manifest(
        build_voxceleb_manifest(root, tmp_path / "v2.jsonl", dataset="vox2", split="dev", progress=False)
    )
    assert [(r.identity, r.extra["video"], r.duration, r.split) for r in records] == [
        ("id00012", "21Uxsk56VDQ", None, "dev"),
        ("id00015", "0fijmz4vTVU", None, "dev"),
    ]
    converted = tmp_path / "vox2wav"
    _tiny_wav(converted / "dev" / "wav" / "id00012" / "21Uxsk56VDQ" / "00001.wav", 0.5)
    (record,) = read_manifest(build_voxceleb_manifest(converted, tmp_path / "w.jsonl", dataset="vox2", progress=False))
    assert record.duration == pytest.approx(0.5) and record.extra["dataset"] == "vox2"


def test_builder_errors_name_the_problem(vox1: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dev/aac"):
        build_voxceleb_manifest(vox1, tmp_path / "x.jsonl", dataset="vox2", progress=False)
    with pytest.raises(FileNotFoundError, match=r"no \.flac files"):
        build_voxceleb_manifest(vox1, tmp_path / "x.jsonl", dataset="vox1", extensions=(".flac",), progress=False)
    with pytest.raises(ValueError, match="dataset"):
        build_voxceleb_manifest(vox1, tmp_path / "x.jsonl", dataset="vox3", progress=False)


def test_trial_lists_resolve_against_the_wav_root(vox1: Path, tmp_path: Path) -> None:
    assert TRIAL_LISTS == {"vox1-o": "veri_test2.txt", "vox1-e": "list_test_all2.txt", "vox1-h": "list_test_hard2.txt"}
    lists = tmp_path / "lists"
    lists.mkdir()
    text = (
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00001.wav\n"
        "0 id10270/x6uYqmx31kE/00001.wav id10002/6WO410QOeuo/00002.wav\n\n"
    )
    for name in TRIAL_LISTS.values():
        (lists / name).write_text(text)
        trials = read_trial_list(lists / name, vox1 / "wav")
        assert trials == [
            VerificationTrial(
                vox1 / "wav/id10270/x6uYqmx31kE/00001.wav", vox1 / "wav/id10270/8jEAjG6SegY/00001.wav", True
            ),
            VerificationTrial(
                vox1 / "wav/id10270/x6uYqmx31kE/00001.wav", vox1 / "wav/id10002/6WO410QOeuo/00002.wav", False
            ),
        ]
    assert trial_speakers(trials) == {"id10270", "id10002"}


def test_trial_list_errors(vox1: Path, tmp_path: Path) -> None:
    missing = tmp_path / "veri_test.txt"
    missing.write_text(
        "1 id10270/x6uYqmx31kE/00001.wav id10270/gone/00001.wav\n"
        "0 id10270/x6uYqmx31kE/00001.wav id10999/gone/00003.wav\n"
    )
    with pytest.raises(FileNotFoundError, match=r"2 of 3 files.*id10270/gone/00001\.wav"):
        read_trial_list(missing, vox1 / "wav")
    assert len(read_trial_list(missing, vox1 / "wav", check_files=False)) == 2
    bad = tmp_path / "bad.txt"
    bad.write_text("1 a.wav b.wav\nyes a.wav b.wav\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2"):
        read_trial_list(bad, vox1 / "wav", check_files=False)
