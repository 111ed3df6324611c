"""Embedding files exactly as the gateway would, without a server: used to calibrate a model
version as it will be served (the CLI passes this to ``export`` — the two packages meet only
through files and this callable)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from contracts.card import load_card
from serving.audio.decode import decode_encoded
from serving.audio.pipeline import AudioLimits, AudioPipeline
from serving.audio.vad import SileroVad
from serving.embedders import AudioEmbedder, ImageEmbedder
from serving.errors import InvalidInput
from serving.inference.onnxruntime_backend import OnnxRuntimeBackend
from serving.models.repository import ModelVersion

FileEmbedder = Callable[[Sequence[Path]], np.ndarray]


def file_embedder(
    model_dir: Path, vad_dir: Path | None, limits: AudioLimits = AudioLimits(), batch_size: int = 8
) -> FileEmbedder:
    """A function: audio files → [N, D] embeddings through decode → resample → VAD → model.

    A file the gateway would refuse (no speech, too short, …) gives a row of NaN, so the caller
    can leave it out exactly as the server would refuse it.

    ``model_dir`` / ``vad_dir`` are version folders (``model.onnx`` + ``card.json``), published or
    still staged.
    """
    model = ModelVersion(load_card(model_dir), model_dir)
    vad = None
    if vad_dir is not None:
        vad = SileroVad(ModelVersion(load_card(vad_dir), vad_dir).model_path)
        vad.load()
    backend = OnnxRuntimeBackend()
    embedder = AudioEmbedder(model, backend, AudioPipeline(vad, model.card.sample_rate or 16000, limits))
    backend.load(embedder.key, model)

    def prepare(path: Path):
        try:
            return embedder.pipeline.prepare(decode_encoded(Path(path).read_bytes()))
        except InvalidInput:
            return None

    return _batched(prepare, embedder.embed_many, model.card.embedding_dim or 0, batch_size)


def _batched(
    prepare: Callable[[Path], object | None], embed_many: Callable[[list], np.ndarray], dim: int, batch_size: int
) -> FileEmbedder:
    """files → [N, dim]: ``prepare`` each file (None = refused → a NaN row), embed in batches."""

    def embed(paths: Sequence[Path]) -> np.ndarray:
        out = np.full((len(paths), dim), np.nan, dtype=np.float32)
        for start in range(0, len(paths), batch_size):
            prepared = [(start + i, prepare(p)) for i, p in enumerate(paths[start : start + batch_size])]
            usable = [(row, p) for row, p in prepared if p is not None]
            if usable:
                out[[row for row, _ in usable]] = embed_many([p for _, p in usable])
        return out

    return embed


def face_file_embedder(
    model_dir: Path,
    models_dir: Path,
    *,
    detector: str = "mtcnn",
    landmarks: str | None = "dlib-sp5",
    batch_size: int = 16,
) -> FileEmbedder:
    """A function: image files → [N, D] unit embeddings of each image's largest face, through the
    gateway's own decode → MTCNN → dlib 5 points → chip → model (``serving/vision``).

    An image in which the detector finds no face gives a row of NaN (left out, as the server
    would refuse it). ``model_dir`` is the face model's version folder, published or staged; the
    detector and landmark models come from the repository ``models_dir``.
    """
    from serving.models.repository import ModelRepository
    from serving.vision.decode import decode_encoded as decode_image
    from serving.vision.landmarks import ShapePredictor5
    from serving.vision.mtcnn import MtcnnDetector
    from serving.vision.pipeline import FacePipeline

    repo = ModelRepository(models_dir)
    model = ModelVersion(load_card(model_dir), model_dir)
    backend = OnnxRuntimeBackend()
    embedder = ImageEmbedder(model, backend)
    backend.load(embedder.key, model)
    stages = [repo.get(f"{detector}-{stage}").model_path for stage in ("pnet", "rnet", "onet")]
    pipeline = FacePipeline(
        MtcnnDetector(*stages),
        ShapePredictor5.load(repo.get(landmarks).model_path) if landmarks else None,
        embedder.alignment,
    )

    def chip(path: Path) -> np.ndarray | None:
        try:
            return pipeline.main_face(decode_image(Path(path).read_bytes())).chip
        except InvalidInput:
            return None

    return _batched(chip, embedder.embed_many, model.card.embedding_dim or 0, batch_size)


def landmark_predictor(model_path: Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The gateway's 5-point predictor for a landmark model file: (image [H, W(, 3)] uint8,
    box [4]) → points [5, 2] float32 pixels (export checks it against dlib before publishing)."""
    from serving.vision.landmarks import ShapePredictor5

    return ShapePredictor5.load(model_path).predict
