"""The generated face-track corpus: deterministic, identity-split, quality labels that mean
something, landmarks that follow the pose, chips that never read outside their frame, the same on
disk as in memory, and step-indexed group batches. That its chips are the served chips is
``test_face_chips_served.py``'s."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from contracts.face_geometry import dlib_alignment
from training.data.face_render import (
    FRAME_SCALE,
    JITTER_LOW,
    FrameParams,
    backdrop,
    chip_inside_frame,
    frame_points,
    source_points,
)
from training.data.face_tracks import (
    GroupBatches,
    build_face_tracks,
    face_sources,
    load_face_tracks,
    render_face_tracks,
    render_frame,
    track_params,
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
    name, source = face_sources()[5]
    scene = backdrop(source, np.random.default_rng(2))
    points = source_points(name) + (scene.shape[0] - source.shape[0]) // 2
    rng = np.random.default_rng(0)
    params, light = track_params(rng, 40)
    errors: dict[bool, list[float]] = {True: [], False: []}
    for p in params:
        clean = dataclasses.replace(p, blur=0.0, resolution=112, noise=0.0, jpeg=95)
        a, _, _ = render_frame(scene, points, p, light, dlib_alignment(112), np.random.default_rng(1))
        b, _, _ = render_frame(scene, points, clean, light, dlib_alignment(112), np.random.default_rng(1))
        errors[p.low_quality].append(float(np.abs(a.astype(np.float64) - b).mean()))
    assert 5 <= len(errors[True]) <= 35
    assert min(errors[True]) > np.median(errors[False]) and np.mean(errors[True]) > 2 * np.mean(errors[False])


@pytest.mark.parametrize("size, resolution", [(112, 112), (112, 40), (64, 32)])
def test_landmarks_follow_the_pose_into_the_uncut_frame(size, resolution):
    """Five Gaussian blobs (σ 3 px) at known backdrop points land where ``render_frame`` says they
    do, at every pose and through the up-sampling from a low render resolution: intensity centroid
    within 0.1 px (measured ≤ 0.06; a half-pixel slip in either warp's coordinates is 0.5-0.9 px)."""
    points = np.array([[150.0, 150.0], [230.0, 140.0], [300.0, 160.0], [170.0, 260.0], [280.0, 270.0]])
    ys, xs = np.mgrid[:448, :448]
    blobs = sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 3.0**2)) for x, y in points)
    scene = np.repeat(np.round(255 * blobs).astype(np.uint8)[:, :, None], 3, axis=2)
    light = {"gain": 1.0, "gamma": 1.0, "cast_r": 1.0, "cast_g": 1.0, "cast_b": 1.0}
    reach = 4 * 3.0 * size / 112 * 1.25  # 4 σ of a blob in the frame at the largest zoom
    for dx, dy, zoom, angle in [(0.0, 0.0, 1.0, 0.0), (0.07, -0.05, 1.2, 15.0), (-0.08, 0.06, 0.85, -16.0)]:
        p = FrameParams(dx, dy, zoom, angle, blur=0.0, resolution=resolution, noise=0.0, jpeg=95)
        _, frame, moved = render_frame(scene, points, p, light, dlib_alignment(size), np.random.default_rng(0))
        assert frame.shape == (round(FRAME_SCALE * size),) * 2 + (3,)
        assert np.allclose(moved, frame_points(points, p, size, 448))
        grey = frame.astype(np.float64).mean(axis=2)
        fy, fx = np.mgrid[: grey.shape[0], : grey.shape[1]]
        for x, y in moved:
            weight = grey * ((np.abs(fx - x) <= reach) & (np.abs(fy - y) <= reach))
            centroid = np.array([(weight * fx).sum(), (weight * fy).sum()]) / weight.sum()
            assert np.abs(centroid - (x, y)).max() < 0.1, (dx, dy, zoom, angle)


def test_no_chip_reads_outside_its_frame():
    """At the extreme poses of ``track_params`` (zoom 0.84-1.21, ±16°, shift ±0.08) and landmarks
    jittered by 4 σ of the low-quality jitter, every source's chip lies inside its uncut frame."""
    size = 112
    alignment, frame, side = dlib_alignment(size), round(FRAME_SCALE * size), 4 * 112
    worst = 4 * JITTER_LOW * size
    for name, _ in face_sources():
        points = source_points(name) + (side - 112) // 2
        for zoom in (0.84, 1.21):
            for angle in (-16.0, 16.0):
                for dx in (-0.08, 0.08):
                    for dy in (-0.08, 0.08):
                        p = FrameParams(dx, dy, zoom, angle, 0.0, size, 0.0, 95)
                        moved = frame_points(points, p, size, side)
                        for shift in ([worst, worst], [-worst, -worst]):
                            assert chip_inside_frame(moved + shift, alignment, frame), (name, zoom, angle, dx, dy)
    p = FrameParams(1.0, 0.0, 1.0, 0.0, 0.0, size, 0.0, 95)  # the check can fail: a face at the frame edge
    assert not chip_inside_frame(frame_points(source_points("astronaut") + 168, p, size, side), alignment, frame)


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
    assert not (tmp_path / "corpus/uncut").exists() and "uncut" not in records[0].extra


def test_disk_build_keeps_the_uncut_frames_on_request(tmp_path, small):
    manifest = build_face_tracks(tmp_path / "corpus", **SMALL, heldout_fraction=0.34, uncut=True)
    records = read_manifest(manifest)
    frame = round(FRAME_SCALE * SMALL["size"])
    loaded = load_face_tracks(manifest, size=64)
    assert np.abs(loaded.frames.astype(float) - small.frames).mean() < 3.0  # the same chips as without
    for r in records[:6]:
        from PIL import Image

        with Image.open(tmp_path / "corpus" / r.extra["uncut"]) as img:
            assert img.size == (frame, frame)
        points = np.array(r.extra["points"])
        assert points.shape == (5, 2) and (np.abs(points - frame / 2) < frame / 4).all()  # the face near the centre


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
