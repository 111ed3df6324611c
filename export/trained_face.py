"""``toitsu export RUN`` for a face run: a trained face embedder → a model-repository version.

The same steps as a speaker or sound run (``export/trained_speaker.py``, ``export/trained_sound.py``):
ONNX with a dynamic batch (input ``chip`` uint8 [N, S, S, 3] RGB NHWC — the served layout of an
aligned face chip, normalisation ``(x − 127.5) / 127.5`` inside the graph; output the
L2-normalised ``embedding`` [N, D]) → parity against torch on random chips and on frames of the
generated face-track corpus, single and batched (max abs diff ≤ 1e-4, fail above), and batched vs
single rows (≤ 1e-5) → card with modality ``face``, an ``image`` section, provenance (recipe, its
hash, data, method, held-out EERs) and the parity results → published as the next version.

Calibration (thresholds per FAR) is ``export/face_calibration.py``'s, passed as ``calibrate``
(the CLI passes it when the repository has the detector and landmark models). The card's
``image.alignment`` is the dlib 5-point chip geometry at the model's input size
(``dlib_alignment(size)``): what the gateway's face pipeline feeds the model, and — the same
``Alignment`` and the same ``contracts.face_geometry.cut_chip`` — what the generated face corpus
of the face recipes cuts its training chips with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from contracts.card import FaceCard
from contracts.card_sections import (
    EmbeddingSpec,
    FaceImageSpec,
    ServingHints,
    ShapeRange,
    ShapeRanges,
    TrainingProvenance,
    tensor,
)
from contracts.card_sections import (
    Parity as ParitySection,
)
from contracts.face_geometry import dlib_alignment
from export.onnx_export import export_onnx
from export.parity import Parity, compare, require, torch_vs_onnx
from export.pipeline import Calibrate, export_version
from export.repository import next_version

MAX_ABS_DIFF = 1e-4
NORMALIZATION = (
    "float(x) in 0..255, (x - 127.5) / 127.5, NHWC -> NCHW, inside the graph; RGB channel order; output L2-normalised"
)
PARITY_CORPUS = {"identities": 6, "tracks_per_identity": 1, "frames_per_track": 4, "seed": 7}


class NormalizedFaceEncoder(nn.Module):
    """The served form of a face embedder: chip uint8 [N, S, S, 3] → unit-length [N, D]."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.encoder(chip), dim=1)


def export_face_encoder(encoder: nn.Module, path: Path, size: int) -> Path:
    example = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    return export_onnx(
        NormalizedFaceEncoder(encoder).eval(),
        (example,),
        path,
        input_names=["chip"],
        output_names=["embedding"],
        dynamic_axes={"chip": {0: "batch"}, "embedding": {0: "batch"}},
    )


def corpus_chips(size: int) -> tuple[np.ndarray, str]:
    """Chips of a small generated face-track corpus (uint8 [N, size, size, 3]) and a name for them."""
    from training.data.face_tracks import render_face_tracks

    tracks = render_face_tracks(size=size, **PARITY_CORPUS)
    p = PARITY_CORPUS
    return tracks.frames, (
        f"{len(tracks)} chips of generated face tracks ({p['identities']} identities, seed {p['seed']})"
    )


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
    return [
        require(graph, max_abs_diff=MAX_ABS_DIFF),
        require(compare("batching", [(single, batch)]), max_abs_diff=1e-5),
    ]


def build_face_card(
    name: str,
    version: int,
    dim: int,
    size: int,
    provenance: TrainingProvenance,
    parity: list[Parity],
    chip_names: list[str],
) -> FaceCard:
    """The card of a trained face embedder (modality ``face``, input role ``image``)."""
    return FaceCard(
        name=name,
        version=version,
        description=f"{provenance.model or 'face encoder'} trained by toitsu ({provenance.method or ''})",
        inputs=[tensor("chip", "uint8", [-1, size, size, 3], "image")],
        outputs=[tensor("embedding", "float32", [-1, dim], "embedding")],
        image=FaceImageSpec(
            size=(size, size),
            layout="NHWC",
            dtype="uint8",
            channels="RGB",
            normalization=NORMALIZATION,
            alignment=dlib_alignment(size),
        ),
        embedding=EmbeddingSpec(output="embedding", dim=dim, normalized=True),
        shape_ranges=ShapeRanges(batch=ShapeRange(min=1, opt=16, max=64)),
        serving=ServingHints(max_batch_size=64, preferred_batch_sizes=[8, 16, 32, 64], max_queue_delay_us=2000),
        provenance=provenance,
        parity=ParitySection(
            reference="the trained torch module (CPU)", inputs=chip_names, checks=[p.to_dict() for p in parity]
        ),
    )


def export_face_run(
    run_dir: Path,
    models_dir: Path,
    *,
    name: str | None = None,
    calibrate: Calibrate | None = None,
    chips: np.ndarray | None = None,
) -> Path:
    """Export a face run's encoder as the next version of ``name``; returns its folder.

    ``chips`` (uint8 [N, S, S, 3]) replaces the generated corpus frames of the parity check.
    """
    from training.recipes.face import load_trained_face_encoder

    trained = load_trained_face_encoder(Path(run_dir))
    name = name or trained.export_name
    version = next_version(models_dir, name)

    def stage(staged: Path) -> FaceCard:
        onnx_path = export_face_encoder(trained.encoder, staged / "model.onnx", trained.image_size)
        if chips is None:
            parity_chips, chip_names = corpus_chips(trained.image_size)
        else:
            parity_chips, chip_names = np.ascontiguousarray(chips, dtype=np.uint8), f"{len(chips)} given chips"
        print(f"{name} v{version}: exported from {run_dir} (step {trained.step}); parity on {len(parity_chips)} chips")
        parity = face_parity(trained.encoder, onnx_path, parity_chips)
        return build_face_card(
            name,
            version,
            trained.embedding_dim,
            trained.image_size,
            TrainingProvenance(**trained.provenance),
            parity,
            [chip_names],
        )

    return export_version(models_dir, name, version, stage, calibrate)
