"""``toitsu export RUN`` for any kind of run: one lookup in ``EXPORTERS``, then the one pipeline.

Each kind's exporter stages its model (ONNX, parity, typed card) and names the calibration that
kind needs; ``export/pipeline.py`` does the rest. Export never imports serving: the gateway's
offline embedding functions, which calibration runs through, are injected as ``Embedders``.
A new kind (audio-visual) is one function here and one line in ``EXPORTERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from export.face_calibration import FaceEmbedderFactory
from export.speaker_dev import EmbedderFactory

FACE_PIPELINE_MODELS = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet", "dlib-sp5")


@dataclass(frozen=True)
class Embedders:
    """The gateway's offline embedding functions (``serving/offline.py``), injected by the CLI."""

    audio: EmbedderFactory
    face: FaceEmbedderFactory
    robustness: bool = False  # speaker runs: the red team's summary in the card (`toitsu export --robustness`)


def export_speaker(
    run_dir: Path, models_dir: Path, work_dir: Path, embedders: Embedders, name: str | None = None
) -> Path:
    from export.trained_speaker import export_run

    return export_run(run_dir, models_dir, work_dir, embedders.audio, name=name, robustness=embedders.robustness)


def export_sound(
    run_dir: Path, models_dir: Path, work_dir: Path, embedders: Embedders, name: str | None = None
) -> Path:
    from export.sound_calibration import sound_calibrator
    from export.trained_sound import export_sound_run

    return export_sound_run(
        run_dir, models_dir, work_dir, name=name, calibrate=sound_calibrator(embedders.audio, work_dir)
    )


def export_face(run_dir: Path, models_dir: Path, work_dir: Path, embedders: Embedders, name: str | None = None) -> Path:
    """Calibration runs the gateway's face pipeline (MTCNN → dlib 5 points → chip of the model's
    size), so the repository needs the default pack's detector and landmark models; without them
    the version is published uncalibrated (the gateway refuses to serve it) and a warning says so."""
    from export.face_calibration import face_calibrator
    from export.repository import versions
    from export.trained_face import export_face_run

    calibrate = None
    if all(versions(models_dir, m) for m in FACE_PIPELINE_MODELS):
        calibrate = face_calibrator(embedders.face, models_dir, work_dir)
    else:
        print(
            f"warning: {models_dir} lacks the face detector / landmark models (`make models`): "
            "the version is published without calibration and cannot be served until re-exported"
        )
    return export_face_run(run_dir, models_dir, name=name, calibrate=calibrate)


def export_generative(
    run_dir: Path, models_dir: Path, work_dir: Path, embedders: Embedders, name: str | None = None
) -> Path:
    """A generator card: ONNX + parity, no calibration (the gateway verifies nothing with it)."""
    from export.trained_generator import export_generator_run

    return export_generator_run(run_dir, models_dir, name=name)


def export_disentangle(
    run_dir: Path, models_dir: Path, work_dir: Path, embedders: Embedders, name: str | None = None
) -> Path:
    """A generator card of the §7 decoder: ONNX + parity, no calibration."""
    from export.trained_disentangle import export_disentangle_run

    return export_disentangle_run(run_dir, models_dir, name=name)


RunExporter = Callable[[Path, Path, Path, Embedders, str | None], Path]
EXPORTERS: dict[str, RunExporter] = {
    "speaker": export_speaker,
    "sound": export_sound,
    "face": export_face,
    "generative": export_generative,
    "disentangle": export_disentangle,
}


def export_trained_run(
    kind: str, run_dir: Path, models_dir: Path, work_dir: Path, embedders: Embedders, name: str | None = None
) -> Path:
    """Publish a run of recipe kind ``kind`` as the next version of its model; its folder."""
    if kind not in EXPORTERS:
        raise ValueError(f"no exporter for recipe kind {kind!r} (known: {', '.join(EXPORTERS)})")
    return EXPORTERS[kind](Path(run_dir), Path(models_dir), Path(work_dir), embedders, name)
