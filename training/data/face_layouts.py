"""Face-track manifests from local copies of YouTube Faces and VoxCeleb face tracks (METHODS §5).

Nothing is downloaded: point the builders at an extracted copy. Layouts:

- YouTube Faces (Wolf et al., 2011): ``<root>/frame_images_DB/<person>/<video>/<video>.<frame>.jpg``,
  e.g. ``frame_images_DB/Aaron_Eckhart/0/0.555.jpg`` (1,595 people, 3,425 videos); the aligned
  release ``<root>/aligned_images_DB/<person>/<video>/aligned_detect_<video>.<frame>.jpg``.
  ``root`` may also be the ``*_DB`` folder itself. The ``<person>.labeled_faces.txt`` files
  beside the person folders are ignored. One video is one track.
- VoxCeleb face tracks: ``<root>/<identity>/<video>/<track>/<frame>.jpg`` (e.g.
  ``id10001/1zcIwhmdeo4/00001/0001.jpg``), and VoxCeleb1's ``unzippedIntervalFaces`` release,
  ``<root>/data/<Name>/1.6/<video>/<track>/<nn>.jpg`` where ``1.6`` is the sampling setting:
  a ``data/`` folder is entered and a level of numeric folder names between the identity and
  its videos is skipped.

Rows: ``ManifestRecord(path, identity, None, split, extra={"track", "video", "frame"})`` with
``track`` = ``<identity>/<video>`` (YTF) or ``<identity>/<video>/<track>`` (VoxCeleb), frames in
numeric order. ``split``: a seeded ``heldout_fraction`` of the identities is ``heldout``, the
rest ``train`` (an identity split, like the generated corpus). No quality labels: real tracks
have none, so ``load_face_tracks`` reports EER overall only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from training.data.manifest import ManifestRecord, write_manifest

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
YTF_DIRS = ("frame_images_DB", "aligned_images_DB")
Layout = Literal["youtube_faces", "voxceleb"]
_NUMBER = re.compile(r"(\d+)(?=\.[A-Za-z]+$)")  # the last number before the suffix
_FPS_DIR = re.compile(r"^\d+(\.\d+)?$")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")), key=lambda p: p.name
    )


def _frame_number(path: Path) -> int:
    """``0.555.jpg`` → 555, ``aligned_detect_0.555.jpg`` → 555, ``0007.jpg`` → 7; −1 if none."""
    match = _NUMBER.search(path.name)
    return int(match.group(1)) if match else -1


def _frames(folder: Path) -> list[Path]:
    files = [Path(e.path) for e in os.scandir(folder) if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: (_frame_number(p), p.name))


def _split(identities: list[str], heldout_fraction: float, seed: int) -> dict[str, str]:
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    order = np.random.default_rng(np.random.SeedSequence([seed, 0xFACE])).permutation(len(identities))
    heldout = {identities[i] for i in order[: round(len(identities) * heldout_fraction)].tolist()}
    return {name: "heldout" if name in heldout else "train" for name in identities}


def _records(
    found: Iterator[tuple[str, str, str, list[Path]]],
    heldout_fraction: float,
    seed: int,
    max_frames_per_track: int | None,
) -> list[ManifestRecord]:
    tracks = [t for t in found if t[3]]
    split = _split(sorted({t[0] for t in tracks}), heldout_fraction, seed)
    out = []
    for identity, video, track, frames in tracks:
        if max_frames_per_track is not None and len(frames) > max_frames_per_track:
            # Evenly spaced frames cover the whole track rather than its first seconds.
            frames = [frames[i] for i in np.linspace(0, len(frames) - 1, max_frames_per_track).round().astype(int)]
        for path in frames:
            out.append(
                ManifestRecord(
                    path,
                    identity,
                    None,
                    split[identity],
                    {"track": track, "video": video, "frame": _frame_number(path)},
                )
            )
    return out


def youtube_faces_tracks(root: Path, *, aligned: bool = False) -> Iterator[tuple[str, str, str, list[Path]]]:
    """(identity, video, track, frames) of a YouTube Faces tree, sorted."""
    root = Path(root)
    wanted = YTF_DIRS[1] if aligned else YTF_DIRS[0]
    db = root if root.name in YTF_DIRS else root / wanted
    if not db.is_dir():
        raise FileNotFoundError(
            f"no {wanted} folder under {root}: expected the YouTube Faces layout "
            f"{wanted}/<person>/<video>/<video>.<frame>.jpg"
        )
    for person in _subdirs(db):
        for video in _subdirs(person):
            yield person.name, video.name, f"{person.name}/{video.name}", _frames(video)


def voxceleb_face_tracks(root: Path) -> Iterator[tuple[str, str, str, list[Path]]]:
    """(identity, video, track, frames) of a VoxCeleb face-track tree, sorted (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    if (root / "data").is_dir() and not _frames(root / "data"):
        root = root / "data"
    for identity in _subdirs(root):
        level = _subdirs(identity)
        if level and all(_FPS_DIR.match(d.name) for d in level):  # unzippedIntervalFaces: <Name>/1.6/<video>
            level = [video for d in level for video in _subdirs(d)]
        for video in level:
            for track in _subdirs(video):
                yield identity.name, video.name, f"{identity.name}/{video.name}/{track.name}", _frames(track)


def face_layout_records(
    root: Path,
    layout: Layout,
    *,
    heldout_fraction: float = 0.0,
    seed: int = 0,
    aligned: bool = False,
    max_frames_per_track: int | None = None,
) -> list[ManifestRecord]:
    """Manifest rows of a YouTube Faces (``aligned`` picks the aligned release) or VoxCeleb tree."""
    if layout == "youtube_faces":
        tracks = youtube_faces_tracks(root, aligned=aligned)
    elif layout == "voxceleb":
        tracks = voxceleb_face_tracks(root)
    else:
        raise ValueError(f"layout must be 'youtube_faces' or 'voxceleb', got {layout!r}")
    records = _records(tracks, heldout_fraction, seed, max_frames_per_track)
    if not records:
        raise FileNotFoundError(f"no face frames found under {root} in the {layout} layout")
    return records


def build_face_layout_manifest(root: Path, out: Path, layout: Layout, **kwargs) -> Path:
    """``face_layout_records(root, layout, **kwargs)`` written as a JSONL manifest at ``out``."""
    return write_manifest(out, face_layout_records(root, layout, **kwargs))
