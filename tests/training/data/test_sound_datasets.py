"""ESC-50 / ESC-10 / UrbanSound8K manifests on small fake trees in the official layouts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.manifest import read_manifest
from training.data.sound_datasets import ESC50_COLUMNS, FOLDS, US8K_COLUMNS, esc50_manifest, urbansound8k_manifest

# (target, category, esc10) — three ESC-50 classes, two of them in ESC-10.
ESC_CLASSES = [(0, "dog", True), (10, "rain", True), (37, "clock_alarm", False)]


def _wav(path: Path, seconds: float, rate: int, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros((int(seconds * rate), channels), dtype=np.int16), rate, subtype="PCM_16")


def _csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture()
def esc50(tmp_path: Path) -> Path:
    """ESC-50-master with 3 classes × 5 folds × 2 clips (two takes of one source per fold)."""
    root = tmp_path / "ESC-50-master"
    rows = []
    for target, category, esc10 in ESC_CLASSES:
        for fold in range(5, 0, -1):  # written out of order: the builder sorts
            for take in "AB":
                src = f"{100 + 10 * target + fold}"
                name = f"{fold}-{src}-{take}-{target}.wav"
                rows.append(
                    {
                        "filename": name,
                        "fold": fold,
                        "target": target,
                        "category": category,
                        "esc10": str(esc10),
                        "src_file": src,
                        "take": take,
                    }
                )
                _wav(root / "audio" / name, 0.05, 44100)
    _csv(root / "meta" / "esc50.csv", ESC50_COLUMNS, rows)
    return root


def test_esc50_manifest_has_folds_labels_and_durations(esc50: Path, tmp_path: Path) -> None:
    out = esc50_manifest(esc50, tmp_path / "esc50.jsonl", workers=2)
    records = read_manifest(out)
    assert len(records) == 30
    assert [(r.extra["fold"], r.path.name) for r in records] == sorted((r.extra["fold"], r.path.name) for r in records)
    for r in records:
        fold, src, take, target = r.path.stem.split("-")
        assert r.extra["fold"] == int(fold) and r.split == f"fold{fold}"
        assert r.extra["label"] == r.extra["target"] == int(target)
        assert r.identity == dict((t, c) for t, c, _ in ESC_CLASSES)[int(target)]
        assert r.extra["src_file"] == src and r.extra["take"] == take
        assert r.extra["dataset"] == "esc50" and r.duration == pytest.approx(0.05, abs=1e-4)
        assert r.path == esc50 / "audio" / r.path.name
    # The parent folder works as root too, and a rebuild writes the same bytes.
    again = esc50_manifest(esc50.parent, tmp_path / "again.jsonl")
    assert again.read_bytes() == out.read_bytes()


def test_esc10_is_the_flagged_subset_renumbered(esc50: Path, tmp_path: Path) -> None:
    records = read_manifest(esc50_manifest(esc50, tmp_path / "esc10.jsonl", esc10=True))
    assert len(records) == 20 and {r.identity for r in records} == {"dog", "rain"}
    assert {(r.identity, r.extra["label"], r.extra["target"]) for r in records} == {("dog", 0, 0), ("rain", 1, 10)}
    assert {r.extra["dataset"] for r in records} == {"esc10"}
    assert {r.extra["fold"] for r in records} == set(range(1, FOLDS["esc10"] + 1))


def test_esc50_errors_name_the_problem(esc50: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="meta/esc50.csv"):
        esc50_manifest(tmp_path / "nowhere", tmp_path / "x.jsonl")
    (esc50 / "audio" / "3-203-A-10.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 30 .*3-203-A-10\.wav"):
        esc50_manifest(esc50, tmp_path / "x.jsonl")
    _csv(esc50 / "meta" / "esc50.csv", ESC50_COLUMNS[:4], [])
    with pytest.raises(ValueError, match="esc10"):
        esc50_manifest(esc50, tmp_path / "x.jsonl")
    _csv(
        esc50 / "meta" / "esc50.csv",
        ESC50_COLUMNS,
        [
            {
                "filename": "6-1-A-0.wav",
                "fold": 6,
                "target": 0,
                "category": "dog",
                "esc10": "True",
                "src_file": 1,
                "take": "A",
            }
        ],
    )
    _wav(esc50 / "audio" / "6-1-A-0.wav", 0.05, 44100)
    with pytest.raises(ValueError, match=r"folds \[6\]"):
        esc50_manifest(esc50, tmp_path / "x.jsonl")


@pytest.fixture()
def urbansound(tmp_path: Path) -> Path:
    """UrbanSound8K with 3 classes × 10 folds, one slice each, mixed rates and channels."""
    root = tmp_path / "data" / "UrbanSound8K"
    classes = [(3, "dog_bark"), (8, "siren"), (0, "air_conditioner")]
    rows = []
    for fold in range(1, 11):
        for k, (class_id, name) in enumerate(classes):
            fs_id = 1000 * fold + class_id
            slice_name = f"{fs_id}-{class_id}-0-{k}.wav"
            rate, channels = (22050, 2) if k == 1 else (44100, 1)
            _wav(root / "audio" / f"fold{fold}" / slice_name, 0.1 + 0.01 * k, rate, channels)
            rows.append(
                {
                    "slice_file_name": slice_name,
                    "fsID": fs_id,
                    "start": 1.5,
                    "end": 1.6 + 0.01 * k,
                    "salience": 1 + k % 2,
                    "fold": fold,
                    "classID": class_id,
                    "class": name,
                }
            )
    _csv(root / "metadata" / "UrbanSound8K.csv", US8K_COLUMNS, rows[::-1])
    return root


def test_urbansound8k_manifest(urbansound: Path, tmp_path: Path) -> None:
    records = read_manifest(urbansound8k_manifest(urbansound.parent, tmp_path / "us8k.jsonl"))
    assert len(records) == 30 and FOLDS["urbansound8k"] == 10
    assert [r.extra["fold"] for r in records] == [f for f in range(1, 11) for _ in range(3)]
    for r in records:
        assert r.path.parent == urbansound / "audio" / f"fold{r.extra['fold']}"
        assert r.split == f"fold{r.extra['fold']}" and r.extra["dataset"] == "urbansound8k"
        fs_id, class_id, _, k = r.path.stem.split("-")
        assert r.extra["label"] == int(class_id) and r.extra["fsID"] == fs_id
        assert r.identity == {"3": "dog_bark", "8": "siren", "0": "air_conditioner"}[class_id]
        assert r.duration == pytest.approx(0.1 + 0.01 * int(k), abs=1e-4)
        assert r.extra["start"] == 1.5 and r.extra["salience"] == 1 + int(k) % 2
    with pytest.raises(FileNotFoundError, match="UrbanSound8K.csv"):
        urbansound8k_manifest(tmp_path, tmp_path / "x.jsonl")


def test_fold_table() -> None:
    assert FOLDS == {"esc50": 5, "esc10": 5, "urbansound8k": 10, "synthetic": 5}
