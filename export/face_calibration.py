"""Calibrating a face model as it is served (MTCNN → dlib 5 points → chip → model) on generated
face tracks.

Dev set: the synthetic face-track corpus (``training/data/face_tracks.py``: 102 identities from
packaged photos — 100 LFW faces, the astronaut, Grace Hopper — with motion, blur, noise, JPEG and
lighting). Not its chips (those are already aligned) but the uncut frames they were cut from,
each pasted at a random place and scale into a noisy scene so that the detector has a scene to
search, as in a video frame, and the served pipeline aligns the face itself. Track ``t00`` of every identity (4
frames) is its enrollment; every frame of track ``t01`` is a probe scored against every identity:
a target trial for its own, non-target for the 101 others. Thresholds, EER, minDCF and the EER
per probe quality ("low"/"high") go into the card via ``export.calibration.calibrate``; frames in
which the detector finds no face are left out, as the server would refuse them, and listed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from contracts.card import AnyCard
from contracts.card_sections import Calibration
from contracts.trials import DevTrials, Trial
from export.calibration import Embed, calibrate
from export.pipeline import Calibrate
from training.data.manifest import read_manifest, write_manifest

DEV = {"identities": 102, "tracks": 2, "frames": 4, "seed": 2026, "scene": 256}
FaceEmbedderFactory = Callable[[Path, Path], Embed]  # (staged model folder, models repository) → Embed


def face_dev_trials(work_dir: Path) -> tuple[DevTrials, Path]:
    """The dev trials (built once under ``work_dir/dev-faces``, then cached)."""
    from training.data.face_tracks import build_face_tracks

    root = (work_dir / "dev-faces").resolve()  # manifest rows are read relative to the manifest
    source = build_face_tracks(
        root / "crops",
        identities=DEV["identities"],
        tracks_per_identity=DEV["tracks"],
        frames_per_track=DEV["frames"],
        seed=DEV["seed"],
        uncut=True,
    )
    # The scenes depend on the frames' build too (a new corpus builder version redoes them).
    settings = {**DEV, "frames_build": json.loads((source.parent / "build.json").read_text())["args"]}
    manifest, stamp = root / "manifest.jsonl", root / "scenes.json"
    if not manifest.exists() or not stamp.exists() or json.loads(stamp.read_text()) != settings:
        shutil.rmtree(root / "scenes", ignore_errors=True)  # built for other settings, or interrupted
        _write_scenes(source, root)
        stamp.write_text(json.dumps(settings))  # last: a build without its stamp is redone
    enrollments: dict[str, list[Path]] = {}
    probes: list[tuple[str, Path]] = []
    for record in sorted(read_manifest(manifest), key=lambda r: str(r.path)):
        identity, track = str(record.identity), str(record.extra["track"]).rsplit("/", 1)[-1]
        if track == "t00":
            enrollments.setdefault(identity, []).append(Path(record.path))
        else:
            probes.append((identity, Path(record.path)))
    trials = [Trial(speaker=person, test=path, target=person == own) for person in enrollments for own, path in probes]
    name = f"synthetic-face-tracks-dev-{len(enrollments)}id-seed{DEV['seed']}"
    return DevTrials(name=name, enrollments=enrollments, trials=trials), root


def _write_scenes(source_manifest: Path, root: Path) -> None:
    """Each uncut frame scaled so that its face's chip area is 0.8-1.3× the chip side and pasted
    with that area at a random place of a noisy ``scene``² background (the frame is larger than
    the scene, so it is clipped to it)."""
    from training.data.face_render import FRAME_SCALE

    rng = np.random.default_rng(DEV["seed"])
    size = DEV["scene"]
    records = []
    for record in sorted(read_manifest(source_manifest), key=lambda r: str(r.path)):
        with Image.open(source_manifest.parent / str(record.extra["uncut"])) as opened:
            frame = opened.convert("RGB")
        chip = frame.width / FRAME_SCALE  # the chip side the corpus was cut at
        side = int(round(chip * rng.uniform(0.8, 1.3)))
        wide = int(round(frame.width * side / chip))
        frame = frame.resize((wide, wide), Image.Resampling.BICUBIC)
        base = rng.uniform(40, 200, 3)
        scene = Image.fromarray(np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8))
        x, y = rng.integers(0, size - side + 1, 2)
        scene.paste(frame, (int(x) + (side - wide) // 2, int(y) + (side - wide) // 2))
        path = root / "scenes" / Path(record.path).relative_to(source_manifest.parent / "frames")
        path.parent.mkdir(parents=True, exist_ok=True)
        scene.save(path, format="JPEG", quality=92)
        extra = {k: v for k, v in record.extra.items() if k not in ("uncut", "points")}
        records.append(dataclasses.replace(record, path=path, extra=extra))
    write_manifest(root / "manifest.jsonl", records)


def face_calibrator(embedder_factory: FaceEmbedderFactory, models_dir: Path, work_dir: Path) -> Calibrate:
    """Staged face model folder + card → the card's ``calibration`` section, measured through the
    gateway's face pipeline with the detector and landmark models of ``models_dir``."""

    def run(staged: Path, card: AnyCard) -> Calibration:
        dev, dev_dir = face_dev_trials(work_dir)
        print(f"{card.name}: calibrating on {dev.name} ({len(dev.trials)} trials)")
        section = calibrate(
            embedder_factory(staged, models_dir),
            dev,
            dev_dir,
            plot=staged / "det.png",
            group_field="quality",
            group_name="probe_quality",
        )
        section.enrollment = f"L2-normalised mean of the {DEV['frames']} frames of track t00 of each identity"
        section.pipeline = "MTCNN (largest face) → dlib 5 points → dlib chip → model"
        return section

    return run
