"""``toitsu export RUN`` for a sound run: a trained sound encoder → a model-repository version.

The same steps as a speaker run (``export/trained_speaker.py``, whose parts are reused): ONNX
with dynamic batch and length (inputs ``waveform`` [B, T], ``lengths`` [B]; output the
L2-normalised ``embedding`` [B, D]) → parity against torch on random input and on clips of
the generated sound corpus (max abs diff ≤ 1e-4, fail above), and padded batch vs single rows
(≤ 1e-5) → card with modality ``sound``, provenance (recipe, its hash, the data manifest's hash
or the formula class set, the pre-training run it started from, its test accuracy) and the
parity results → published as the next version.

Calibration: a sound card's ``calibration`` (thresholds for an open-set "unknown" decision in
``SoundService.Classify``) has a dev protocol of its own (``export/sound_calibration.py``), passed
as ``calibrate``; without it the version is published uncalibrated (the gateway refuses to serve
it), and ``add_calibration`` can write one into an already published version's card later.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contracts.card import SoundCard, SpeakerCard, load_card, write_card
from contracts.card_sections import Calibration, TrainingProvenance
from export.parity import Parity
from export.pipeline import Calibrate, export_version
from export.repository import next_version, write_triton_config
from export.trained_speaker import NormalizedEncoder, build_card, export_encoder, measure_parity

if TYPE_CHECKING:
    from training.data.sound_corpus import SoundCorpusSettings

PARITY_CORPUS: SoundCorpusSettings = {"clips_per_class": 5, "clip_seconds": 2.0, "n_folds": 5, "seed": 7}
PARITY_CLIPS = 8


def corpus_clips(work_dir: Path, sample_rate: int, count: int = PARITY_CLIPS) -> tuple[list[np.ndarray], str]:
    """``count`` clips spread over the classes of a small generated sound corpus (built once
    under ``work_dir/parity-sounds``), and a name for them."""
    from training.data.audio_store import AudioStore
    from training.data.manifest import read_manifest
    from training.data.sound_corpus import build_sound_corpus

    p = PARITY_CORPUS
    out = work_dir / f"parity-sounds-{sample_rate}"
    manifest = Path(
        build_sound_corpus(out, p["clips_per_class"], p["clip_seconds"], sample_rate, p["n_folds"], p["seed"])
    )
    records = sorted(read_manifest(manifest), key=lambda r: (str(r.identity), str(r.path)))
    by_class: dict[str, list] = {}
    for r in records:
        by_class.setdefault(str(r.identity), []).append(r)
    # Round-robin over classes so that the clips cover as many sound types as possible.
    chosen = [
        group[i] for i in range(max(map(len, by_class.values()))) for group in by_class.values() if i < len(group)
    ][:count]
    store = AudioStore(chosen, sample_rate, cache=False)
    return [store.load(i) for i in range(len(chosen))], f"{len(chosen)} clips of {manifest.parent.name}"


def sound_parity(encoder, onnx_path: Path, clips: Sequence[np.ndarray]) -> list[Parity]:
    """torch vs ONNX (random noise and ``clips``, single and padded batches) and padding; raises
    ``ParityError`` beyond tolerance (``export.trained_speaker.measure_parity``)."""
    return measure_parity(NormalizedEncoder(encoder).eval(), onnx_path, list(clips))


def export_sound_run(
    run_dir: Path,
    models_dir: Path,
    work_dir: Path,
    *,
    name: str | None = None,
    calibrate: Calibrate | None = None,
    clips: Sequence[np.ndarray] | None = None,
) -> Path:
    """Export a sound run's encoder as the next version of ``name``; returns its folder.

    ``clips`` replaces the generated corpus clips of the parity check (e.g. real recordings).
    """
    from training.recipes.sound import load_trained_sound_encoder

    trained = load_trained_sound_encoder(Path(run_dir))
    name = name or trained.export_name
    version = next_version(models_dir, name)
    given = None if clips is None else list(clips)

    def stage(staged: Path) -> SpeakerCard | SoundCard:
        onnx_path = export_encoder(trained.encoder, staged / "model.onnx", trained.sample_rate)
        if given is None:
            parity_clips, clip_names = corpus_clips(work_dir, trained.sample_rate)
        else:
            parity_clips, clip_names = given, f"{len(given)} given clips"
        print(f"{name} v{version}: exported from {run_dir} (step {trained.step}); parity on {len(parity_clips)} clips")
        parity = sound_parity(trained.encoder, onnx_path, parity_clips)
        return build_card(
            name,
            version,
            trained.embedding_dim,
            trained.sample_rate,
            TrainingProvenance(**trained.provenance),
            parity,
            [clip_names],
            modality="sound",
        )

    return export_version(models_dir, name, version, stage, calibrate)


def add_calibration(version_dir: Path, calibration: Calibration) -> SpeakerCard | SoundCard:
    """Write ``calibration`` into a published version's card (atomically) and refresh the
    model's ``config.pbtxt``; returns the new card."""
    card = load_card(version_dir)
    if not isinstance(card, SoundCard | SpeakerCard):
        raise ValueError(f"{version_dir}: a {card.modality} card has no calibration")
    card.calibration = calibration
    write_card(version_dir, card)
    write_triton_config(version_dir.parent.parent, version_dir.parent.name)
    return card
