"""VoxCeleb2 dev as an audio-visual corpus for blind distillation (METHODS §8), from a local tree.

Nothing is downloaded (DESIGN §4). The audio is the dev layout as distributed,
``<root>/dev/aac/<speaker id>/<YouTube id>/<nnnnn>.m4a`` (or the tree converted to wav under
``dev/wav``: AudioStore reads through libsndfile, which cannot read AAC). The faces are
face-track frames or pre-extracted crops in a parallel tree under ``<root>/<frames>`` (default
``dev/frames``), either per clip, ``<speaker>/<video>/<nnnnn>/<frame>.jpg``, or per video,
``<speaker>/<video>/<frame>.jpg`` (then every clip of the video shares the video's frames).

The manifest written has the same shape as the generated corpus's (``training.data.av_corpus``):
one line per clip, ``identity`` null, extras ``video``, ``clip`` (``<video>/<nnnnn>``) and
``frames`` (relative to the manifest's folder). The speaker ids go only to the oracle file next
to it (``<manifest stem>.oracle.json``, clip → speaker), for the oracle baseline and evaluation.
The paths of the distributed layout do contain speaker ids; the sampler reads only ``video`` and
the teacher, never a path's folders.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from training.data.av_corpus import oracle_path
from training.data.manifest import ManifestRecord, write_manifest
from training.data.voxceleb import _audio_dir, _duration, _walk

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        Path(e.path) for e in os.scandir(folder) if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS
    )


def clip_frame_paths(frames_dir: Path, speaker: str, video: str, clip: str) -> list[Path]:
    """A clip's face frames: its own crop folder if it has one, else its video's frames."""
    return _images(frames_dir / speaker / video / clip) or _images(frames_dir / speaker / video)


def build_voxceleb2_av_manifest(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    frames: str = "dev/frames",
    audio_subdir: str | None = None,
    split: str = "train",
    extensions: tuple[str, ...] = (".wav", ".m4a"),
) -> Path:
    """Write the clip manifest of a VoxCeleb2 dev tree to ``out`` and its oracle file; return ``out``.

    Clips without any face frame are left out (one warning with the count): the teacher cannot
    place them. Raises FileNotFoundError when the audio or frames folder is missing or no clip
    has both.
    """
    root = Path(root).resolve()
    out = Path(out).resolve()
    audio_dir = _audio_dir(root, "vox2", audio_subdir)
    frames_dir = root / frames
    if not frames_dir.is_dir():
        raise FileNotFoundError(f"no {frames} folder under {root}: expected <speaker>/<video>/[<clip>/]<frame>.jpg")
    records, oracle, missing = [], {}, 0
    wanted = tuple(e.lower() for e in extensions)
    for speaker, video, audio in _walk(audio_dir, wanted, frozenset(), progress=False):
        chips = clip_frame_paths(frames_dir, speaker, video, audio.stem)
        if not chips:
            missing += 1
            continue
        clip = f"{video}/{audio.stem}"
        oracle[clip] = speaker
        frame_list = [os.path.relpath(p, out.parent) for p in chips]
        extra = {"video": video, "clip": clip, "frames": frame_list, "dataset": "vox2"}
        records.append(ManifestRecord(audio, None, _duration(audio), split, extra))
    if missing:
        warnings.warn(f"{missing} clips under {audio_dir} have no face frames in {frames_dir}; left out", stacklevel=2)
    if not records:
        raise FileNotFoundError(f"no clip under {audio_dir} has face frames under {frames_dir}")
    speakers = sorted(set(oracle.values()))
    out.parent.mkdir(parents=True, exist_ok=True)
    oracle_path(out).write_text(json.dumps({"clips": oracle, "speakers": speakers}, indent=1) + "\n", encoding="utf-8")
    return write_manifest(out, records)
