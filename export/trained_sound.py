"""``toitsu export RUN`` for a sound run: a trained sound encoder → a model-repository version.

The same steps as a speaker run (``export/trained_speaker.py``, whose parts are reused): ONNX
with dynamic batch and length (inputs ``waveform`` [B, T], ``lengths`` [B]; output the
L2-normalised ``embedding`` [B, D]) → parity against torch on random input and on clips of
the generated sound corpus (max abs diff ≤ 1e-4, fail above), and padded batch vs single rows
(≤ 1e-5) → card with modality ``sound``, provenance (recipe, its hash, the data manifest's hash
or the formula class set, the pre-training run it started from, its test accuracy) and the
parity results → published as the next version.

Calibration: a sound card's ``calibration`` (thresholds for an open-set "unknown" decision in
``SoundService.Classify``) needs a dev protocol of its own and is not measured here. Pass
``calibrate`` — called with the staged version folder (``model.onnx`` and a first ``card.json``
are there) and the card, returning the ``calibration`` section — to add it before publication;
without it the version is published uncalibrated, and ``add_calibration`` can write one into an
already published version's card later.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.card import read_card, write_card
from export.parity import Parity
from export.repository import next_version, publish, staging_dir, write_triton_config
from export.speaker_version import print_parity
from export.trained_speaker import NormalizedEncoder, build_card, export_encoder, measure_parity

Calibrate = Callable[[Path, dict[str, Any]], dict[str, Any]]
PARITY_CORPUS = {"clips_per_class": 5, "clip_seconds": 2.0, "n_folds": 5, "seed": 7}
PARITY_CLIPS = 8


def corpus_clips(work_dir: Path, sample_rate: int, count: int = PARITY_CLIPS) -> tuple[list[np.ndarray], str]:
    """``count`` clips spread over the classes of a small generated sound corpus (built once
    under ``work_dir/parity-sounds``), and a name for them."""
    from training.data.audio_store import AudioStore
    from training.data.manifest import read_manifest
    from training.data.sound_corpus import build_sound_corpus

    p = PARITY_CORPUS
    out = work_dir / f"parity-sounds-{sample_rate}"
    manifest = Path(build_sound_corpus(out, p["clips_per_class"], p["clip_seconds"], sample_rate, p["n_folds"],
                                       p["seed"]))
    records = sorted(read_manifest(manifest), key=lambda r: (str(r.identity), str(r.path)))
    by_class: dict[str, list] = {}
    for r in records:
        by_class.setdefault(str(r.identity), []).append(r)
    # Round-robin over classes so that the clips cover as many sound types as possible.
    chosen = [group[i] for i in range(max(map(len, by_class.values()))) for group in by_class.values()
              if i < len(group)][:count]
    store = AudioStore(chosen, sample_rate, cache=False)
    return [store.load(i) for i in range(len(chosen))], f"{len(chosen)} clips of {manifest.parent.name}"


def sound_parity(encoder, onnx_path: Path, clips: Sequence[np.ndarray]) -> list[Parity]:
    """torch vs ONNX (random noise and ``clips``, single and padded batches) and padding; raises
    ``ParityError`` beyond tolerance (``export.trained_speaker.measure_parity``)."""
    return measure_parity(NormalizedEncoder(encoder).eval(), onnx_path, list(clips))


def export_sound_run(run_dir: Path, models_dir: Path, work_dir: Path, *, name: str | None = None,
                     calibrate: Calibrate | None = None, clips: Sequence[np.ndarray] | None = None) -> Path:
    """Export a sound run's encoder as the next version of ``name``; returns its folder.

    ``clips`` replaces the generated corpus clips of the parity check (e.g. real recordings).
    """
    from training.recipes.sound import load_trained_sound_encoder

    trained = load_trained_sound_encoder(Path(run_dir))
    name = name or trained.export_name
    version = next_version(models_dir, name)
    staged = staging_dir(models_dir, name, version)
    try:
        onnx_path = export_encoder(trained.encoder, staged / "model.onnx", trained.sample_rate)
        if clips is None:
            clips, clip_names = corpus_clips(work_dir, trained.sample_rate)
        else:
            clips, clip_names = list(clips), f"{len(clips)} given clips"
        print(f"{name} v{version}: exported from {run_dir} (step {trained.step}); parity on {len(clips)} clips")
        parity = sound_parity(trained.encoder, onnx_path, clips)
        print_parity([p.to_dict() for p in parity])
        card = build_card(name, version, trained.embedding_dim, trained.sample_rate, trained.provenance, parity,
                          [clip_names], modality="sound", clips_key="clips")
        write_card(staged, card)
        if calibrate is not None:
            card["calibration"] = calibrate(staged, card)
            write_card(staged, card)
        return publish(staged, models_dir, name, version)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def add_calibration(version_dir: Path, calibration: dict[str, Any]) -> dict[str, Any]:
    """Write ``calibration`` into a published version's card (atomically) and refresh the
    model's ``config.pbtxt``; returns the new card. The section's format is the speaker
    cards' (``export/calibration.py``): dev_trials, eer, eer_threshold, thresholds…"""
    card = read_card(version_dir)
    card["calibration"] = calibration
    write_card(version_dir, card)
    write_triton_config(version_dir.parent.parent, version_dir.parent.name)
    return card
