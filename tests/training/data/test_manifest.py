"""JSONL manifest round trip, relative paths and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.data.manifest import ManifestRecord, read_manifest, write_manifest


def test_round_trip_relative_paths_and_extras(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    records = [
        ManifestRecord(
            corpus / "audio" / "a.wav",
            "spk0001",
            2.5,
            "train",
            {"voice": "en-us+m3", "text": "Hello there.", "track": 7},
        ),
        ManifestRecord(corpus / "audio" / "b.wav", None, None, "heldout"),
    ]
    path = write_manifest(corpus / "manifest.jsonl", records)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {
        "path": "audio/a.wav",
        "identity": "spk0001",
        "duration": 2.5,
        "split": "train",
        "voice": "en-us+m3",
        "text": "Hello there.",
        "track": 7,
    }
    assert read_manifest(path) == records
    # Moving the whole folder keeps the manifest valid: paths resolve against its new place.
    moved = corpus.rename(tmp_path / "moved")
    assert read_manifest(moved / "manifest.jsonl")[0].path == moved / "audio" / "a.wav"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    write_manifest(path, [ManifestRecord(tmp_path / "x.wav", "a", 1.0, "train")])

    def broken():
        yield ManifestRecord(tmp_path / "y.wav", "b", 1.0, "train")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_manifest(path, broken())
    assert [r.identity for r in read_manifest(path)] == ["a"]  # old manifest untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


def test_errors_are_readable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clash"):
        write_manifest(tmp_path / "m.jsonl", [ManifestRecord(tmp_path / "x.wav", "a", 1.0, "train", {"split": "x"})])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.wav", "split": "train"}\n\n{"identity": "x"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3"):
        read_manifest(bad)
