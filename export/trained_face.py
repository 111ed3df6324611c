"""``toitsu export RUN`` for a face run: a trained face embedder → a model-repository version.

The same steps as a speaker or sound run (``export/trained_speaker.py``, ``export/trained_sound.py``):
ONNX with a dynamic batch (input ``chip`` uint8 [N, S, S, 3] RGB NHWC — the served layout of an
aligned face chip, normalisation ``(x − 127.5) / 127.5`` inside the graph; output the
L2-normalised ``embedding`` [N, D]) → parity against torch on random chips and on frames of the
generated face-track corpus, single and batched (max abs diff ≤ 1e-4, fail above), and batched vs
single rows (≤ 1e-5) → card with modality ``face``, an ``image`` section, provenance (recipe, its
hash, data, method, held-out EERs) and the parity results → published as the next version.

Calibration (thresholds per FAR) needs a dev protocol and is not measured here; pass
``calibrate`` (called with the staged folder and the card, returning the ``calibration``
section) to add it before publication.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.card import new_card, tensor, write_card
from export.onnx_export import export_onnx
from export.parity import Parity, compare, require, torch_vs_onnx
from export.repository import next_version, publish, staging_dir
from export.speaker_version import print_parity

MAX_ABS_DIFF = 1e-4
NORMALIZATION = ("float(x) in 0..255, (x - 127.5) / 127.5, NHWC -> NCHW, inside the graph; "
                 "RGB channel order; output L2-normalised")
PARITY_CORPUS = {"identities": 6, "tracks_per_identity": 1, "frames_per_track": 4, "seed": 7}
Calibrate = Callable[[Path, dict[str, Any]], dict[str, Any]]


class NormalizedFaceEncoder(nn.Module):
    """The served form of a face embedder: chip uint8 [N, S, S, 3] → unit-length [N, D]."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.encoder(chip), dim=1)


def export_face_encoder(encoder: nn.Module, path: Path, size: int) -> Path:
    example = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    return export_onnx(NormalizedFaceEncoder(encoder).eval(), (example,), path, input_names=["chip"],
                       output_names=["embedding"], dynamic_axes={"chip": {0: "batch"}, "embedding": {0: "batch"}})


def corpus_chips(size: int) -> tuple[np.ndarray, str]:
    """Frames of a small generated face-track corpus (uint8 [N, size, size, 3]) and a name for them."""
    from training.data.face_tracks import render_face_tracks

    tracks = render_face_tracks(size=size, **PARITY_CORPUS)
    p = PARITY_CORPUS
    return tracks.frames, (f"{len(tracks)} frames of generated face tracks ({p['identities']} identities, "
                           f"seed {p['seed']})")


def face_parity(encoder: nn.Module, onnx_path: Path, chips: np.ndarray) -> list[Parity]:
    """torch vs ONNX (random and corpus chips, single and batched) and batched vs single rows;
    raises ``ParityError`` beyond tolerance."""
    model = NormalizedFaceEncoder(encoder).eval()
    size = chips.shape[1]
    noise = np.random.default_rng(0).integers(0, 256, size=(3, size, size, 3), dtype=np.uint8)
    feeds = [{"chip": x[None]} for x in [*noise, *chips]] + [{"chip": noise}, {"chip": chips}]
    graph = torch_vs_onnx("graph", model, onnx_path, feeds)
    with torch.no_grad():
        batch = model(torch.from_numpy(chips)).numpy()
        single = np.concatenate([model(torch.from_numpy(x[None])).numpy() for x in chips])
    return [require(graph, max_abs_diff=MAX_ABS_DIFF), require(compare("batching", [(single, batch)]), max_abs_diff=1e-5)]


def build_face_card(name: str, version: int, dim: int, size: int, provenance: dict[str, Any],
                    parity: list[Parity], chip_names: list[str]) -> dict[str, Any]:
    """The card of a trained face embedder (modality ``face``, input role ``image``)."""
    return new_card(
        name, version, "face",
        description=f"{provenance.get('model', 'face encoder')} trained by toitsu ({provenance.get('method', '')})",
        inputs=[tensor("chip", "uint8", [-1, size, size, 3], "image")],
        outputs=[tensor("embedding", "float32", [-1, dim], "embedding")],
        image={"size": [size, size], "layout": "NHWC", "dtype": "uint8", "channels": "RGB",
               "normalization": NORMALIZATION},
        embedding={"output": "embedding", "dim": dim, "normalized": True, "metric": "cosine"},
        shape_ranges={"batch": {"min": 1, "opt": 16, "max": 64}},
        serving={"max_batch_size": 64, "preferred_batch_sizes": [8, 16, 32, 64], "max_queue_delay_us": 2000},
        provenance=provenance,
        parity={"chips": chip_names, "checks": [p.to_dict() for p in parity]})


def export_face_run(run_dir: Path, models_dir: Path, *, name: str | None = None,
                    calibrate: Calibrate | None = None, chips: np.ndarray | None = None) -> Path:
    """Export a face run's encoder as the next version of ``name``; returns its folder.

    ``chips`` (uint8 [N, S, S, 3]) replaces the generated corpus frames of the parity check.
    """
    from training.recipes.face import load_trained_face_encoder

    trained = load_trained_face_encoder(Path(run_dir))
    name = name or trained.export_name
    version = next_version(models_dir, name)
    staged = staging_dir(models_dir, name, version)
    try:
        onnx_path = export_face_encoder(trained.encoder, staged / "model.onnx", trained.image_size)
        if chips is None:
            chips, chip_names = corpus_chips(trained.image_size)
        else:
            chips, chip_names = np.ascontiguousarray(chips, dtype=np.uint8), f"{len(chips)} given chips"
        print(f"{name} v{version}: exported from {run_dir} (step {trained.step}); parity on {len(chips)} chips")
        parity = face_parity(trained.encoder, onnx_path, chips)
        print_parity([p.to_dict() for p in parity])
        card = build_face_card(name, version, trained.embedding_dim, trained.image_size, trained.provenance, parity,
                               [chip_names])
        write_card(staged, card)
        if calibrate is not None:
            card["calibration"] = calibrate(staged, card)
            write_card(staged, card)
        return publish(staged, models_dir, name, version)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
