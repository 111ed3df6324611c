"""A deterministic synthetic face-track corpus, built offline from face photos that ship in
packages (METHODS §5; issue 3 "Training").

Identities: the first 100 images of ``skimage.data.lfw_subset()`` (25×25 grey LFW faces; the
other 100 are non-faces; each image is treated as one identity), the astronaut of
``skimage.data.astronaut()`` and matplotlib's ``grace_hopper.jpg`` (their face boxes were found
once with dlib's frontal detector and are fixed below). Each identity has one source photo, so
its tracks differ only by what a video pipeline does to a face:

- per track: a base pose (rotation ±10°, zoom, offset), an illumination (gain, gamma, colour
  cast) and a share of poor frames (0.15-0.65);
- per frame: smooth motion around the base pose (sinusoids of random phase over the track:
  translation, zoom, rotation), then, for a "poor" frame, heavy degradations drawn from the hard
  ranges (Gaussian blur σ 3-6 px, render resolution 8-14 px, sensor noise σ 0.05-0.10,
  JPEG quality 8-25) and for the others mild ones (σ ≤ 0.8, ≥ 40 px, noise ≤ 0.02, quality ≥ 60).
  The LFW faces are only 25 px wide, so the hard ranges are set against that resolution.

Each frame is a ``size``×``size`` RGB uint8 crop with a **quality label computed from its
degradation parameters** (``low_quality``: blur σ ≥ 3 or resolution ≤ 14 px or noise σ ≥ 0.05
or JPEG quality ≤ 25), not from the draw that chose them. Identities are split (seeded) into
``train`` and ``heldout``. Every track renders from its own generator seeded by (seed, identity,
track), so a track looks the same whatever else is rendered.

``render_face_tracks`` keeps a corpus in memory (training); ``build_face_tracks`` writes it as
``frames/<identity>/<track>/<nnn>.jpg`` + ``manifest.jsonl`` (extra fields: ``track``,
``frame``, ``quality`` "low"/"high" and the degradation parameters), which ``load_face_tracks``
reads back, as it reads manifests of real layouts (``training.data.face_layouts``).
``GroupBatches`` draws step-indexed training batches of groups × frames (identities or tracks).
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageFilter

from training.data.manifest import ManifestRecord, read_manifest, write_manifest

_BUILD_VERSION = 1
LFW_FACES = 100  # lfw_subset(): images 0..99 are faces, 100..199 are not
# (x1, y1, x2, y2) of the face in each packaged photo (dlib frontal detector, upsample 1).
PHOTO_BOXES = {"astronaut": (175, 76, 265, 166), "grace-hopper": (180, 139, 366, 325)}
PHOTO_MARGIN = 1.1  # the source crop is the box grown by this factor, roughly LFW's framing
SOURCE_SIZE = 112  # every source face is resampled to this size before rendering
LOW_BLUR, LOW_RESOLUTION, LOW_NOISE, LOW_JPEG = 3.0, 14, 0.05, 25  # "low" thresholds (see above)
GroupBy = Literal["identity", "track"]


# ------------------------------------------------------------------------------- sources


def _photo_face(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, PHOTO_MARGIN * max(x2 - x1, y2 - y1) / 2
    crop = Image.fromarray(image).crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    return np.asarray(crop.resize((SOURCE_SIZE, SOURCE_SIZE), Image.BICUBIC))


@functools.lru_cache(maxsize=1)
def face_sources() -> tuple[tuple[str, np.ndarray], ...]:
    """(name, RGB uint8 [112, 112, 3]) of every available identity: the two colour photos first,
    then ``lfw-000`` … ``lfw-099`` (grey, replicated to RGB). Cached; treat as read-only."""
    import matplotlib.cbook
    import skimage.data

    hopper = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    out = [
        ("astronaut", _photo_face(skimage.data.astronaut(), PHOTO_BOXES["astronaut"])),
        ("grace-hopper", _photo_face(hopper, PHOTO_BOXES["grace-hopper"])),
    ]
    lfw = skimage.data.lfw_subset()[:LFW_FACES]  # float64 [100, 25, 25] in [0, 1]
    for i, face in enumerate(lfw):
        grey = Image.fromarray(np.round(face * 255).astype(np.uint8)).resize((SOURCE_SIZE, SOURCE_SIZE), Image.BICUBIC)
        out.append((f"lfw-{i:03d}", np.repeat(np.asarray(grey)[:, :, None], 3, axis=2)))
    return tuple(out)


# ------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class FrameParams:
    """How one frame was made: pose (shift in output fractions, zoom, degrees) and degradations."""

    dx: float
    dy: float
    zoom: float
    angle: float
    blur: float
    resolution: int
    noise: float
    jpeg: int

    @property
    def low_quality(self) -> bool:
        return (
            self.blur >= LOW_BLUR
            or self.resolution <= LOW_RESOLUTION
            or self.noise >= LOW_NOISE
            or self.jpeg <= LOW_JPEG
        )


def _track_params(rng: np.random.Generator, frames: int) -> tuple[list[FrameParams], dict[str, float]]:
    """Per-frame parameters of one track and its illumination (gain, gamma, cast_r/g/b)."""
    base = {
        "dx": rng.uniform(-0.04, 0.04),
        "dy": rng.uniform(-0.04, 0.04),
        "zoom": rng.uniform(0.9, 1.15),
        "angle": rng.uniform(-10, 10),
    }
    light = {
        "gain": rng.uniform(0.7, 1.3),
        "gamma": rng.uniform(0.8, 1.25),
        **{f"cast_{c}": rng.uniform(0.92, 1.08) for c in "rgb"},
    }
    amplitude = {"dx": 0.04, "dy": 0.03, "zoom": 0.06, "angle": 6.0}
    phase = {k: rng.uniform(0, 2 * np.pi, size=2) for k in amplitude}
    poor_share = rng.uniform(0.15, 0.65)
    t = np.arange(frames) / max(frames, 1)
    params = []
    for f in range(frames):
        # Two slow sinusoids per pose parameter: smooth motion over the track, never a jump.
        pose = {
            k: base[k]
            + amplitude[k] * 0.5 * (np.sin(2 * np.pi * t[f] + phase[k][0]) + np.sin(np.pi * t[f] + phase[k][1]))
            for k in amplitude
        }
        if rng.random() < poor_share:  # a poor frame: one to three hard degradations
            hard = set(rng.choice(4, size=int(rng.integers(1, 4)), replace=False).tolist())
        else:
            hard = set()
        params.append(
            FrameParams(
                dx=float(pose["dx"]),
                dy=float(pose["dy"]),
                zoom=float(pose["zoom"]),
                angle=float(pose["angle"]),
                blur=float(rng.uniform(3.0, 6.0) if 0 in hard else rng.uniform(0.0, 0.8)),
                resolution=int(rng.integers(8, 15) if 1 in hard else rng.integers(40, SOURCE_SIZE + 1)),
                noise=float(rng.uniform(0.05, 0.10) if 2 in hard else rng.uniform(0.0, 0.02)),
                jpeg=int(rng.integers(8, 26) if 3 in hard else rng.integers(60, 96)),
            )
        )
    return params, {k: float(v) for k, v in light.items()}


def render_frame(
    source: np.ndarray, p: FrameParams, light: dict[str, float], size: int, rng: np.random.Generator
) -> np.ndarray:
    """source RGB uint8 [S, S, 3] → one degraded frame RGB uint8 [size, size, 3].

    Order as in a camera pipeline: pose (affine warp, bicubic) at ``p.resolution`` → illumination
    → optical blur → sensor noise → up-sampling to ``size`` → JPEG.
    """
    s = source.shape[0]
    res = min(p.resolution, size)
    # PIL's affine maps output (x, y) to input (a x + b y + c, d x + e y + f): rotate by angle and
    # scale by 1/zoom about the centre, shifted by (dx, dy) of the output width.
    theta, scale = np.deg2rad(p.angle), s / (res * p.zoom)
    cos, sin = np.cos(theta) * scale, np.sin(theta) * scale
    cx_out = res / 2
    cx_in, cy_in = s / 2 - p.dx * s, s / 2 - p.dy * s
    coeffs = (cos, sin, cx_in - cos * cx_out - sin * cx_out, -sin, cos, cy_in + sin * cx_out - cos * cx_out)
    img = Image.fromarray(source).transform(
        (res, res), Image.AFFINE, coeffs, resample=Image.BICUBIC, fillcolor=(118, 112, 104)
    )
    x = np.asarray(img, dtype=np.float32) / 255.0
    cast = np.array([light["cast_r"], light["cast_g"], light["cast_b"]], dtype=np.float32)
    x = np.clip(light["gain"] * np.power(x, light["gamma"]) * cast, 0.0, 1.0)
    img = Image.fromarray(np.round(x * 255).astype(np.uint8))
    if p.blur > 0.05:  # σ in output pixels, scaled to the render resolution
        img = img.filter(ImageFilter.GaussianBlur(p.blur * res / size))
    x = np.asarray(img, dtype=np.float32) / 255.0 + rng.normal(0.0, p.noise, size=(res, res, 3)).astype(np.float32)
    img = Image.fromarray(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=p.jpeg)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


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


def _render_track(
    identity: int, track: int, frames: int, size: int, seed: int
) -> tuple[np.ndarray, list[FrameParams], dict[str, float]]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, identity, track]))
    params, light = _track_params(rng, frames)
    source = face_sources()[identity][1]
    return np.stack([render_frame(source, p, light, size, rng) for p in params]), params, light


def render_face_tracks(
    *,
    identities: int,
    tracks_per_identity: int,
    frames_per_track: int,
    size: int = 112,
    seed: int = 0,
    heldout_fraction: float = 0.3,
) -> FaceTracks:
    """The corpus in memory (see the module docstring); the same arguments give the same arrays."""
    _check_sizes(identities, tracks_per_identity, frames_per_track, size)
    heldout = _heldout_identities(identities, heldout_fraction, seed)
    names = [face_sources()[i][0] for i in range(identities)]
    frames, ident, track, low, split, track_names = [], [], [], [], [], []
    for i in range(identities):
        for t in range(tracks_per_identity):
            pixels, params, _ = _render_track(i, t, frames_per_track, size, seed)
            frames.append(pixels)
            ident += [i] * frames_per_track
            track += [len(track_names)] * frames_per_track
            low += [p.low_quality for p in params]
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
) -> Path:
    """Write ``out_dir/frames/<identity>/t<NN>/<nnn>.jpg`` and ``out_dir/manifest.jsonl``; return the latter.

    Frames are the in-memory renderings saved as JPEG quality 95 (the degradation JPEG already
    happened inside ``render_frame``). Re-running with the same arguments returns at once; with
    other arguments the previous build is removed first (never files this builder did not write).
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
        "builder_version": _BUILD_VERSION,
    }
    manifest, stamp = out_dir / "manifest.jsonl", out_dir / "build.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    if stamp.exists():
        old = json.loads(stamp.read_text(encoding="utf-8"))
        if old.get("args") == args and old.get("complete") and manifest.exists():
            return manifest
        shutil.rmtree(out_dir / "frames", ignore_errors=True)
        manifest.unlink(missing_ok=True)
    elif (out_dir / "frames").exists():
        raise FileExistsError(
            f"{out_dir} has a frames/ folder but no build.json, so it was not made by this "
            "builder; choose an empty folder or remove it"
        )
    _write_json(stamp, {"args": args, "complete": False})
    heldout = _heldout_identities(identities, heldout_fraction, seed)
    records = []
    for i in range(identities):
        name = face_sources()[i][0]
        for t in range(tracks_per_identity):
            pixels, params, light = _render_track(i, t, frames_per_track, size, seed)
            folder = out_dir / "frames" / name / f"t{t:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for f, (frame, p) in enumerate(zip(pixels, params)):
                path = folder / f"{f:03d}.jpg"
                Image.fromarray(frame).save(path, format="JPEG", quality=95)
                records.append(
                    ManifestRecord(
                        path,
                        name,
                        None,
                        "heldout" if i in heldout else "train",
                        {
                            "track": f"{name}/t{t:02d}",
                            "frame": f,
                            "quality": "low" if p.low_quality else "high",
                            "blur": round(p.blur, 3),
                            "resolution": p.resolution,
                            "noise": round(p.noise, 4),
                            "jpeg": p.jpeg,
                            "zoom": round(p.zoom, 3),
                            "angle": round(p.angle, 2),
                            "gain": round(light["gain"], 3),
                        },
                    )
                )
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
        with Image.open(r.path) as img:
            img = img.convert("RGB")
            frames[row] = np.asarray(img if img.size == (size, size) else img.resize((size, size), Image.BICUBIC))
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
