"""A generated audio-visual corpus: talking-face "videos" for blind distillation (METHODS §8).

Each identity is one face source of the face-track corpus (``training.data.face_render``) bound
to one pseudo-speaker voice of the speech corpus (``enumerate_speakers``: identity ``i`` speaks
with voice ``i``). Every identity has ``videos_per_identity`` videos; a video is one session:

- its face track (``render_track``: a base pose with smooth drift, one illumination, a share of
  poor frames, a backdrop), cut into ``clips_per_video`` consecutive clips of
  ``frames_per_clip`` chips;
- its channel: one effect preset drawn (seeded) per video from ``effects`` (telephone band,
  additive noise at an SNR, reverb), applied to every utterance of the video with fresh noise.

A clip is its chips plus one utterance of the identity's voice. Identities are split (seeded)
into ``train`` / ``dev`` / ``test``. Video ids are a seeded permutation (``v00017``), so nothing
in a path or a manifest line names the person: the manifest has ``identity`` null, and the
identities live only in ``manifest.oracle.json`` (clip → identity), for tests and the oracle baseline.

Layout: ``videos/<video>/c<CC>.wav`` and ``videos/<video>/c<CC>/<fff>.jpg``; ``manifest.jsonl``,
one line per clip: ``path`` (the audio), ``split``, extra ``video``, ``clip`` and ``frames`` (chip
paths relative to the manifest's folder; ``clip_frames`` resolves them). Each finished video
leaves ``videos/<video>/clips.jsonl``, so an interrupted build resumes where it stopped, and
``build.json`` records the arguments so that a finished build is not redone. Every video renders
from generators seeded by (seed, identity, session), whatever else is built.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from contracts.face_geometry import dlib_alignment
from training.data.face_render import face_sources
from training.data.face_tracks import render_track
from training.data.manifest import ManifestRecord, read_manifest, write_manifest
from training.data.synthetic_speech import SpeakerSpec, check_voices, enumerate_speakers, render_utterance

_BUILD_VERSION = 1
AV_EFFECTS = ("clean", "telephone", "noise_snr20", "noise_snr10", "reverb", "telephone+noise")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class _VideoJob:
    """One video: which identity and session, where it goes and how it sounds."""

    video: str
    identity: int
    session: int
    split: str
    spec: SpeakerSpec
    seed: int
    clips: int
    frames_per_clip: int
    size: int
    sample_rate: int
    effect: str
    root: Path  # the corpus folder (frame paths are relative to it)


def _render_video(job: _VideoJob) -> list[ManifestRecord]:
    """Render a video's clips and its shard manifest, or read back a finished shard."""
    folder = job.root / "videos" / job.video
    shard = folder / "clips.jsonl"
    if shard.exists():
        return read_manifest(shard)
    n = job.frames_per_clip
    track = render_track(job.identity, job.session, job.clips * n, dlib_alignment(job.size), job.seed)
    records = []
    for c in range(job.clips):
        (folder / f"c{c:02d}").mkdir(parents=True, exist_ok=True)
        frames = []
        for f, chip in enumerate(track.chips[c * n : (c + 1) * n]):
            path = folder / f"c{c:02d}" / f"{f:03d}.jpg"
            Image.fromarray(chip).save(path, format="JPEG", quality=95)
            frames.append(path.relative_to(job.root).as_posix())
        audio = folder / f"c{c:02d}.wav"
        # Utterance index session·clips + c: every clip of an identity says something else.
        j = job.session * job.clips + c
        text, duration = render_utterance(job.spec, job.seed, job.identity, j, audio, job.sample_rate, job.effect)
        extra = {"video": job.video, "clip": f"{job.video}/c{c:02d}", "frames": frames, "effect": job.effect}
        records.append(ManifestRecord(audio, None, duration, job.split, {**extra, "text": text}))
    write_manifest(shard, records)
    return records


def clip_frames(record: ManifestRecord, manifest: str | os.PathLike[str]) -> list[Path]:
    """The chip paths of a clip's record, resolved against the manifest's folder."""
    root = Path(manifest).resolve().parent
    return [(root / p).resolve() for p in record.extra["frames"]]


def oracle_path(manifest: str | os.PathLike[str]) -> Path:
    """Where the identities of ``manifest``'s clips are kept: ``<stem>.oracle.json`` beside it."""
    manifest = Path(manifest)
    return manifest.with_name(f"{manifest.stem}.oracle.json")


def read_oracle(manifest: str | os.PathLike[str]) -> dict[str, str]:
    """clip id → identity for ``manifest``'s clips (tests, evaluation and the oracle baseline only)."""
    return dict(json.loads(oracle_path(manifest).read_text(encoding="utf-8"))["clips"])


def _split_of(n: int, fractions: tuple[float, float], seed: int) -> list[str]:
    """A seeded identity split: round(n·dev) dev, round(n·test) test, the rest train."""
    order = np.random.default_rng(np.random.SeedSequence([seed, 0xA7])).permutation(n)
    n_dev, n_test = round(n * fractions[0]), round(n * fractions[1])
    if n_dev + n_test >= n:
        raise ValueError(f"dev + test fractions {fractions} leave no training identity among {n}")
    split = ["train"] * n
    for rank, i in enumerate(order.tolist()):
        split[i] = "dev" if rank < n_dev else "test" if rank < n_dev + n_test else "train"
    return split


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _start(out_dir: Path, args: dict) -> bool:
    """True when ``out_dir`` holds a finished build of ``args``; else mark an unfinished one,
    first removing another build's outputs (never files this builder did not write)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = out_dir / "build.json"
    if stamp.exists():
        old = json.loads(stamp.read_text(encoding="utf-8"))
        if old.get("args") == args:
            return bool(old.get("complete")) and (out_dir / "manifest.jsonl").exists()
        shutil.rmtree(out_dir / "videos", ignore_errors=True)
        for name in ("manifest.jsonl", "manifest.oracle.json"):
            (out_dir / name).unlink(missing_ok=True)
    elif (out_dir / "videos").exists():
        raise FileExistsError(f"{out_dir} has a videos/ folder but no build.json; choose an empty folder")
    _write_json(stamp, {"args": args, "complete": False})
    return False


def build_av_corpus(
    out_dir: str | os.PathLike[str],
    *,
    identities: int,
    videos_per_identity: int = 4,
    clips_per_video: int = 2,
    frames_per_clip: int = 4,
    size: int = 112,
    seed: int = 0,
    split_fractions: tuple[float, float] = (0.15, 0.25),
    effects: Sequence[str] = AV_EFFECTS,
    sample_rate: int = 16000,
    workers: int | None = None,
) -> Path:
    """Build the corpus (module docstring) into ``out_dir``; returns ``out_dir/manifest.jsonl``.

    ``split_fractions``: the (dev, test) shares of identities. ``workers`` processes (None: all
    CPUs) render one video each at a time. Re-running with the same arguments returns at once.
    """
    available = len(face_sources())
    if not 2 <= identities <= available:
        raise ValueError(f"identities must be in [2, {available}] (the packaged face sources), got {identities}")
    if min(videos_per_identity, clips_per_video, frames_per_clip) < 1 or size < 16 or not effects:
        raise ValueError("videos, clips and frames must be >= 1, size >= 16 and effects non-empty")
    root = Path(out_dir).resolve()
    args = {
        "kind": "av_corpus",
        "identities": identities,
        "videos_per_identity": videos_per_identity,
        "clips_per_video": clips_per_video,
        "frames_per_clip": frames_per_clip,
        "size": size,
        "seed": seed,
        "split_fractions": list(split_fractions),
        "effects": list(effects),
        "sample_rate": sample_rate,
        "builder_version": _BUILD_VERSION,
    }
    manifest = root / "manifest.jsonl"
    split = _split_of(identities, split_fractions, seed)
    if _start(root, args):
        return manifest
    specs = enumerate_speakers(identities, seed)
    check_voices(specs)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA8]))
    order = rng.permutation(identities * videos_per_identity)  # video ids that say nothing of who
    picks = rng.integers(len(effects), size=identities * videos_per_identity)
    jobs = []
    for i in range(identities):
        for v in range(videos_per_identity):
            n = i * videos_per_identity + v
            jobs.append(
                _VideoJob(
                    f"v{int(order[n]):05d}",
                    i,
                    v,
                    split[i],
                    specs[i],
                    seed,
                    clips_per_video,
                    frames_per_clip,
                    size,
                    sample_rate,
                    effects[int(picks[n])],
                    root,
                )
            )
    workers = (os.cpu_count() or 1) if workers is None else workers
    records: list[ManifestRecord] = []
    if workers <= 1:
        for job in jobs:
            records += _render_video(job)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            for result in pool.map(_render_video, jobs):
                records += result
    records.sort(key=lambda r: str(r.extra["clip"]))
    names = [face_sources()[i][0] for i in range(identities)]
    who = {job.video: names[job.identity] for job in jobs}
    clips = {str(r.extra["clip"]): who[str(r.extra["video"])] for r in records}
    voices = {names[i]: specs[i].id for i in range(identities)}
    _write_json(oracle_path(manifest), {"clips": clips, "videos": who, "voices": voices})
    write_manifest(manifest, records)
    _write_json(root / "build.json", {"args": args, "complete": True, "clips": len(records)})
    return manifest
