"""A deterministic synthetic face-track corpus, built offline from face photos that ship in
packages (METHODS §5; issue 3 "Training"), made of the chips the gateway would cut (issue 10).

Identities: the first 100 images of ``skimage.data.lfw_subset()`` (25×25 grey LFW faces; the
other 100 are non-faces; each image is treated as one identity), the astronaut of
``skimage.data.astronaut()`` and matplotlib's ``grace_hopper.jpg`` (their face boxes were found
once with dlib's frontal detector; ``training.data.face_render``). Each identity has one source
photo, so its tracks differ only by what a camera and a video pipeline do to a face:

- per track: a base pose (rotation ±10°, zoom, offset), an illumination (gain, gamma, colour
  cast), a share of poor frames (0.15-0.65) and a backdrop (the face on a noisy background of one
  random colour);
- per frame: smooth motion around the base pose (sinusoids of random phase over the track:
  translation, zoom, rotation), then, for a "poor" frame, heavy degradations drawn from the hard
  ranges (Gaussian blur σ 3-6 px, render resolution 8-14 px, sensor noise σ 0.05-0.10,
  JPEG quality 8-25) and for the others mild ones (σ ≤ 0.8, ≥ 40 px, noise ≤ 0.02, quality ≥ 60).
  The LFW faces are only 25 px wide, so the hard ranges are set against that resolution;
- then the served alignment: the source's 5 landmarks (found once by the served predictor)
  follow the pose, a small jitter stands for the predictor's error, and the chip is cut with the
  card's geometry, ``contracts.face_geometry.dlib_alignment(size)`` and ``cut_chip`` (dlib's
  chip: the 5-point template, padding 0.25), the function the gateway cuts with.

Each frame is a ``size``×``size`` RGB uint8 chip with a **quality label computed from its
degradation parameters** (``low_quality``: blur σ ≥ 3 or resolution ≤ 14 px or noise σ ≥ 0.05
or JPEG quality ≤ 25), not from the draw that chose them. Identities are split (seeded) into
``train`` and ``heldout``. Every track renders from its own generators seeded by (seed, identity,
track), so a track looks the same whatever else is rendered.

``render_face_tracks`` keeps a corpus in memory (training); ``build_face_tracks`` writes it as
``frames/<identity>/<track>/<nnn>.jpg`` + ``manifest.jsonl`` (extra fields: ``track``,
``frame``, ``quality`` "low"/"high" and the degradation parameters; with ``uncut=True`` also the
uncut frames and their landmarks), which ``load_face_tracks`` reads back, as it reads manifests
of real layouts (``training.data.face_layouts``). ``GroupBatches`` draws step-indexed training
batches of groups × frames (identities or tracks).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from contracts.card_sections import Alignment
from contracts.face_geometry import dlib_alignment
from training.data.face_render import (  # noqa: F401  (re-exported: the corpus's public names)
    LFW_FACES,
    LOW_BLUR,
    LOW_JPEG,
    LOW_NOISE,
    LOW_RESOLUTION,
    PHOTO_BOXES,
    PHOTO_MARGIN,
    SOURCE_SIZE,
    FrameParams,
    backdrop,
    face_sources,
    landmark_jitter,
    render_frame,
    source_points,
    track_params,
)
from training.data.manifest import ManifestRecord, read_manifest, write_manifest

_BUILD_VERSION = 2  # 2: frames are served chips (dlib geometry) cut from uncut frames on a backdrop
GroupBy = Literal["identity", "track"]


@dataclass(frozen=True)
class RenderedTrack:
    """One rendered track: ``chips`` uint8 [N, S, S, 3] (what training reads), ``uncut`` uint8
    [N, F, F, 3] (the frames they were cut from: scenes the served pipeline can run on),
    ``points`` float64 [N, 5, 2] (the exact landmarks in each uncut frame), and how it was made."""

    chips: np.ndarray
    uncut: np.ndarray
    points: np.ndarray
    params: list[FrameParams]
    light: dict[str, float]


def render_track(
    identity: int, track: int, frames: int, alignment: Alignment, seed: int, *, jitter: bool = True
) -> RenderedTrack:
    """Track ``track`` of source ``identity``, from its own generators seeded by (seed, identity,
    track): pose and degradations (the same draws as before chips were cut) and pixel noise from
    one, the backdrop and the landmark jitter from another; ``jitter`` False cuts at the exact points."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, identity, track]))
    aux = np.random.default_rng(np.random.SeedSequence([seed, identity, track, 1]))
    params, light = track_params(rng, frames)
    name, source = face_sources()[identity]
    scene = backdrop(source, aux)
    at = (scene.shape[0] - source.shape[0]) // 2
    points = source_points(name) + at
    chips, uncut, moved = [], [], []
    for p in params:
        offset = landmark_jitter(aux, p.low_quality, alignment.chip_size) if jitter else None
        chip, frame, where = render_frame(scene, points, p, light, alignment, rng, offset)
        chips.append(chip)
        uncut.append(frame)
        moved.append(where)
    return RenderedTrack(np.stack(chips), np.stack(uncut), np.stack(moved), params, light)


# ------------------------------------------------------------------------- in memory


@dataclass
class FaceTracks:
    """A corpus of face tracks in memory, one row per frame.

    frames: uint8 [F, size, size, 3] RGB; identity, track: int64 [F] (indices into
    ``identity_names`` / ``track_names``); low_quality: bool [F]; has_quality: False when the
    source gave no labels (then ``low_quality`` is all False); split: [F] "train" / "heldout".
    """

    frames: np.ndarray
    identity: np.ndarray
    track: np.ndarray
    low_quality: np.ndarray
    split: np.ndarray
    identity_names: list[str]
    track_names: list[str]
    has_quality: bool = True

    def subset(self, split: str) -> FaceTracks:
        """The frames of one split (same name lists, so indices stay comparable)."""
        keep = self.split == split
        return FaceTracks(
            self.frames[keep],
            self.identity[keep],
            self.track[keep],
            self.low_quality[keep],
            self.split[keep],
            self.identity_names,
            self.track_names,
            self.has_quality,
        )

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def _heldout_identities(n: int, fraction: float, seed: int) -> set[int]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xFACE]))
    return set(rng.permutation(n)[: round(n * fraction)].tolist())


def _check_sizes(identities: int, tracks_per_identity: int, frames_per_track: int, size: int) -> None:
    available = len(face_sources())
    if not 1 <= identities <= available:
        raise ValueError(f"identities must be in [1, {available}] (the faces that ship in packages), got {identities}")
    if tracks_per_identity < 1 or frames_per_track < 1 or size < 16:
        raise ValueError("tracks_per_identity and frames_per_track must be >= 1 and size >= 16")


def render_face_tracks(
    *,
    identities: int,
    tracks_per_identity: int,
    frames_per_track: int,
    size: int = 112,
    seed: int = 0,
    heldout_fraction: float = 0.3,
) -> FaceTracks:
    """The corpus in memory (see the module docstring); the same arguments give the same arrays.

    Frames are chips of ``dlib_alignment(size)``: the geometry a face card exported from a model
    trained on them declares, and the served pipeline cuts."""
    _check_sizes(identities, tracks_per_identity, frames_per_track, size)
    heldout = _heldout_identities(identities, heldout_fraction, seed)
    names = [face_sources()[i][0] for i in range(identities)]
    alignment = dlib_alignment(size)
    frames: list[np.ndarray] = []
    ident: list[int] = []
    track: list[int] = []
    low: list[bool] = []
    split: list[str] = []
    track_names: list[str] = []
    for i in range(identities):
        for t in range(tracks_per_identity):
            rendered = render_track(i, t, frames_per_track, alignment, seed)
            frames.append(rendered.chips)
            ident += [i] * frames_per_track
            track += [len(track_names)] * frames_per_track
            low += [p.low_quality for p in rendered.params]
            split += ["heldout" if i in heldout else "train"] * frames_per_track
            track_names.append(f"{names[i]}/t{t:02d}")
    return FaceTracks(
        np.concatenate(frames),
        np.array(ident, dtype=np.int64),
        np.array(track, dtype=np.int64),
        np.array(low, dtype=bool),
        np.array(split),
        names,
        track_names,
    )


# ------------------------------------------------------------------------------ on disk


def build_face_tracks(
    out_dir: Path,
    *,
    identities: int,
    tracks_per_identity: int,
    frames_per_track: int,
    size: int = 112,
    seed: int = 0,
    heldout_fraction: float = 0.3,
    uncut: bool = False,
) -> Path:
    """Write ``out_dir/frames/<identity>/t<NN>/<nnn>.jpg`` and ``out_dir/manifest.jsonl``; return the latter.

    Frames are the in-memory chips saved as JPEG quality 95 (the degradation JPEG already happened
    inside ``render_frame``). ``uncut``: also the frames they were cut from, as
    ``uncut/<identity>/t<NN>/<nnn>.jpg`` (JPEG 95; extra field ``uncut``: that path relative to
    ``out_dir``; ``points``: the exact 5 landmarks in it, [[x, y]] × 5) — scenes to run the served
    pipeline on. Re-running with the same arguments returns at once; with other arguments the
    previous build is removed first (never files this builder did not write).
    """
    _check_sizes(identities, tracks_per_identity, frames_per_track, size)
    out_dir = Path(out_dir).resolve()
    args = {
        "kind": "face_tracks",
        "identities": identities,
        "tracks_per_identity": tracks_per_identity,
        "frames_per_track": frames_per_track,
        "size": size,
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "uncut": uncut,
        "builder_version": _BUILD_VERSION,
    }
    manifest, stamp = out_dir / "manifest.jsonl", out_dir / "build.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    if stamp.exists():
        old = json.loads(stamp.read_text(encoding="utf-8"))
        if old.get("args") == args and old.get("complete") and manifest.exists():
            return manifest
        shutil.rmtree(out_dir / "frames", ignore_errors=True)
        shutil.rmtree(out_dir / "uncut", ignore_errors=True)
        manifest.unlink(missing_ok=True)
    elif (out_dir / "frames").exists():
        raise FileExistsError(
            f"{out_dir} has a frames/ folder but no build.json, so it was not made by this "
            "builder; choose an empty folder or remove it"
        )
    _write_json(stamp, {"args": args, "complete": False})
    heldout = _heldout_identities(identities, heldout_fraction, seed)
    records = []
    alignment = dlib_alignment(size)
    for i in range(identities):
        name = face_sources()[i][0]
        for t in range(tracks_per_identity):
            rendered = render_track(i, t, frames_per_track, alignment, seed)
            folder = Path(name) / f"t{t:02d}"
            (out_dir / "frames" / folder).mkdir(parents=True, exist_ok=True)
            if uncut:
                (out_dir / "uncut" / folder).mkdir(parents=True, exist_ok=True)
            for f, (chip, p) in enumerate(zip(rendered.chips, rendered.params)):
                path = out_dir / "frames" / folder / f"{f:03d}.jpg"
                Image.fromarray(chip).save(path, format="JPEG", quality=95)
                extra = {
                    "track": f"{name}/t{t:02d}",
                    "frame": f,
                    "quality": "low" if p.low_quality else "high",
                    "blur": round(p.blur, 3),
                    "resolution": p.resolution,
                    "noise": round(p.noise, 4),
                    "jpeg": p.jpeg,
                    "zoom": round(p.zoom, 3),
                    "angle": round(p.angle, 2),
                    "gain": round(rendered.light["gain"], 3),
                }
                if uncut:
                    relative = Path("uncut") / folder / f"{f:03d}.jpg"
                    Image.fromarray(rendered.uncut[f]).save(out_dir / relative, format="JPEG", quality=95)
                    extra["uncut"] = relative.as_posix()
                    extra["points"] = np.round(rendered.points[f], 2).tolist()
                records.append(ManifestRecord(path, name, None, "heldout" if i in heldout else "train", extra))
    write_manifest(manifest, records)
    _write_json(stamp, {"args": args, "complete": True, "frames": len(records)})
    return manifest


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_face_tracks(records: Sequence[ManifestRecord] | Path, size: int = 112) -> FaceTracks:
    """Manifest rows (or a manifest path) of face frames → ``FaceTracks`` (images resized to ``size``).

    A row's track is its ``track`` extra field (the identity when absent: one track per identity);
    its quality is the ``quality`` field ("low" / "high"); ``has_quality`` is False when no row has one.
    """
    if isinstance(records, (str, os.PathLike)):
        records = read_manifest(records)
    records = [r for r in records if r.identity is not None]
    if not records:
        raise ValueError("no face frames with an identity in the manifest")
    identity_names = sorted({str(r.identity) for r in records})
    track_names = sorted({str(r.extra.get("track", r.identity)) for r in records})
    id_index = {n: i for i, n in enumerate(identity_names)}
    track_index = {n: i for i, n in enumerate(track_names)}
    frames = np.empty((len(records), size, size, 3), dtype=np.uint8)
    for row, r in enumerate(records):
        with Image.open(r.path) as opened:
            img = opened.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BICUBIC)
            frames[row] = np.asarray(img)
    quality = [r.extra.get("quality") for r in records]
    return FaceTracks(
        frames,
        np.array([id_index[str(r.identity)] for r in records], dtype=np.int64),
        np.array([track_index[str(r.extra.get("track", r.identity))] for r in records], dtype=np.int64),
        np.array([q == "low" for q in quality], dtype=bool),
        np.array([r.split for r in records]),
        identity_names,
        track_names,
        has_quality=any(q is not None for q in quality),
    )


# -------------------------------------------------------------------------------- batches


class GroupBatches(torch.utils.data.Dataset):
    """Step-indexed training batches of ``groups_per_batch`` groups × ``frames_per_group`` frames.

    A group is an identity (supervised) or a track (unsupervised: identities are never read).
    Item ``step`` (a pure function of seed, rank and step, like ``training.data.speaker_batches``):
    ``images`` uint8 [G·K, H, W, 3] group-major (rows g·K … g·K+K−1 are group g), ``groups``
    int64 [G·K] (the group's index: identity or track), ``low_quality`` bool [G·K]. Groups are
    distinct in a batch; a group with fewer than K frames repeats some. ``flip``: each image is
    mirrored left-right with probability ½.
    """

    def __init__(
        self,
        tracks: FaceTracks,
        *,
        group_by: GroupBy,
        groups_per_batch: int,
        frames_per_group: int,
        seed: int,
        rank: int = 0,
        steps: int,
        flip: bool = True,
    ) -> None:
        if group_by not in ("identity", "track"):
            raise ValueError(f"group_by must be 'identity' or 'track', got {group_by!r}")
        keys = tracks.identity if group_by == "identity" else tracks.track
        self.group_ids = np.unique(keys)
        if groups_per_batch > self.group_ids.size:
            raise ValueError(
                f"a batch needs {groups_per_batch} distinct groups ({group_by}) but only {self.group_ids.size} exist"
            )
        if frames_per_group < 2:
            raise ValueError("frames_per_group must be >= 2 (a group needs a positive)")
        self.members = [np.flatnonzero(keys == g) for g in self.group_ids]
        self.tracks, self.group_by, self.flip = tracks, group_by, flip
        self.groups_per_batch, self.frames_per_group = groups_per_batch, frames_per_group
        self.seed, self.rank, self.steps = seed, rank, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        if not 0 <= step < self.steps:
            raise IndexError(f"step {step} outside [0, {self.steps})")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.rank, step]))
        chosen = rng.choice(self.group_ids.size, size=self.groups_per_batch, replace=False)
        rows = np.concatenate(
            [
                rng.choice(
                    self.members[g], size=self.frames_per_group, replace=self.members[g].size < self.frames_per_group
                )
                for g in chosen
            ]
        )
        images = self.tracks.frames[rows]
        if self.flip:
            mirror = rng.random(rows.size) < 0.5
            images = np.where(mirror[:, None, None, None], images[:, :, ::-1], images)
        return {
            "images": torch.from_numpy(np.ascontiguousarray(images)),
            "groups": torch.from_numpy(np.repeat(self.group_ids[chosen], self.frames_per_group)),
            "low_quality": torch.from_numpy(self.tracks.low_quality[rows]),
        }
