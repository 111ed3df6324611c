"""The generated face-track corpus: deterministic, identity-split, quality labels that mean
something, the same on disk as in memory, and step-indexed group batches."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from training.data.face_tracks import (
    GroupBatches,
    _track_params,
    build_face_tracks,
    face_sources,
    load_face_tracks,
    render_face_tracks,
    render_frame,
)
from training.data.manifest import read_manifest

SMALL = {"identities": 6, "tracks_per_identity": 2, "frames_per_track": 4, "size": 64, "seed": 3}


@pytest.fixture(scope="module")
def small():
    return render_face_tracks(**SMALL, heldout_fraction=0.34)


def test_sources_are_the_packaged_faces():
    sources = face_sources()
    assert len(sources) == 102 and [n for n, _ in sources[:3]] == ["astronaut", "grace-hopper", "lfw-000"]
    assert all(img.shape == (112, 112, 3) and img.dtype == np.uint8 for _, img in sources)
    import dlib

    detector = dlib.get_frontal_face_detector()  # the fixed boxes really frame a face
    for name, img in sources[:2]:
        assert len(detector(img, 1)) == 1, name


def test_rendering_is_deterministic_and_split_by_identity(small):
    again = render_face_tracks(**SMALL, heldout_fraction=0.34)
    other = render_face_tracks(**{**SMALL, "seed": 4}, heldout_fraction=0.34)
    assert np.array_equal(small.frames, again.frames) and not np.array_equal(small.frames, other.frames)
    assert small.frames.shape == (48, 64, 64, 3) and small.frames.dtype == np.uint8
    assert len(small.track_names) == 12 and np.bincount(small.track).tolist() == [4] * 12
    heldout = set(small.identity[small.split == "heldout"].tolist())
    train = set(small.identity[small.split == "train"].tolist())
    assert len(heldout) == 2 and not heldout & train and len(heldout | train) == 6
    # A track renders the same whatever else is rendered (its own generator).
    fewer = render_face_tracks(**{**SMALL, "identities": 3}, heldout_fraction=0.34)
    assert np.array_equal(fewer.frames[:8], small.frames[:8])


def test_low_quality_frames_are_further_from_the_clean_frame():
    source = face_sources()[5][1]
    rng = np.random.default_rng(0)
    params, light = _track_params(rng, 40)
    errors = {True: [], False: []}
    for p in params:
        clean = dataclasses.replace(p, blur=0.0, resolution=112, noise=0.0, jpeg=95)
        a = render_frame(source, p, light, 112, np.random.default_rng(1)).astype(np.float64)
        b = render_frame(source, clean, light, 112, np.random.default_rng(1)).astype(np.float64)
        errors[p.low_quality].append(np.abs(a - b).mean())
    assert 5 <= len(errors[True]) <= 35
    assert min(errors[True]) > np.median(errors[False]) and np.mean(errors[True]) > 2 * np.mean(errors[False])


def test_disk_build_round_trips_and_is_reused(tmp_path, small):
    manifest = build_face_tracks(tmp_path / "corpus", **SMALL, heldout_fraction=0.34)
    records = read_manifest(manifest)
    assert len(records) == 48 and records[0].path.suffix == ".jpg" and records[0].path.is_file()
    assert {r.extra["quality"] for r in records} <= {"low", "high"} and records[0].extra["track"] == "astronaut/t00"
    loaded = load_face_tracks(manifest, size=64)
    assert loaded.identity_names == sorted(small.identity_names) and loaded.has_quality
    by_name = {n: i for i, n in enumerate(loaded.track_names)}
    order = np.array([by_name[small.track_names[t]] for t in small.track])
    assert np.array_equal(order, loaded.track)  # same rows, same order
    assert np.array_equal(loaded.low_quality, small.low_quality) and np.array_equal(loaded.split, small.split)
    assert np.abs(loaded.frames.astype(float) - small.frames).mean() < 3.0  # one JPEG-95 pass apart
    stamp = json.loads((tmp_path / "corpus/build.json").read_text())
    assert stamp["complete"] and stamp["frames"] == 48
    before = manifest.stat().st_mtime_ns
    assert build_face_tracks(tmp_path / "corpus", **SMALL, heldout_fraction=0.34) == manifest
    assert manifest.stat().st_mtime_ns == before


def test_group_batches_are_step_indexed_and_group_major(small):
    train = small.subset("train")
    batches = GroupBatches(train, group_by="identity", groups_per_batch=3, frames_per_group=4, seed=0, steps=5)
    a, b = batches[2], batches[2]
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not np.array_equal(a["images"].numpy(), batches[3]["images"].numpy())
    groups = a["groups"].numpy().reshape(3, 4)
    assert a["images"].shape == (12, 64, 64, 3) and len(set(groups[:, 0])) == 3 and (groups == groups[:, :1]).all()
    by_track = GroupBatches(train, group_by="track", groups_per_batch=8, frames_per_group=2, seed=0, steps=1)[0]
    assert by_track["groups"].unique().numel() == 8
    with pytest.raises(ValueError, match="distinct groups"):
        GroupBatches(train, group_by="identity", groups_per_batch=5, frames_per_group=2, seed=0, steps=1)
    with pytest.raises(IndexError):
        batches[5]
