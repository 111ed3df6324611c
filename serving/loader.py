"""Building a served modality from the configuration: model repository → backend → pipeline →
batcher → gallery bound to the model version."""

from __future__ import annotations

from serving.audio.pipeline import AudioPipeline
from serving.audio.vad import SileroVad
from serving.config import Config
from serving.embedders import AudioEmbedder
from serving.gallery import Gallery, ModelBinding
from serving.inference.batcher import MicroBatcher
from serving.inference.onnxruntime_backend import OnnxRuntimeBackend
from serving.metrics import Metrics
from serving.modality import AudioModality
from serving.models.card import CardError
from serving.models.repository import ModelRepository


def load_speaker(config: Config, metrics: Metrics | None = None) -> AudioModality:
    repo = ModelRepository(config.models_dir)
    embedder = speaker_embedder(config, repo, batching=True, metrics=metrics)
    card = embedder.model.card
    if card.calibration is None:
        raise CardError(f"{card.name} v{card.version} has no calibration; a server never guesses a threshold")
    gallery = Gallery.open(config.var_dir / "galleries" / "speaker", modality="speaker", dim=card.embedding_dim,
                           model=ModelBinding(card.name, card.version), config=config.gallery)
    if metrics is not None:
        metrics.gallery_size.labels("speaker").set_function(lambda: len(gallery))
    return AudioModality(embedder, gallery)


def speaker_embedder(config: Config, repo: ModelRepository, *, batching: bool,
                     metrics: Metrics | None = None) -> AudioEmbedder:
    """The configured speaker model with its VAD pipeline; the micro-batcher started if asked."""
    section = config.speaker
    model = repo.get(section.model, section.version or None)
    if model.card.modality != "speaker" or not model.card.sample_rate:
        raise CardError(f"{model.directory}: not a speaker model with an audio sample rate")
    vad = None
    if section.use_vad:
        vad = SileroVad(repo.get(section.vad_model).model_path)
        vad.load()
    pipeline = AudioPipeline(vad, model.card.sample_rate, config.audio)
    backend = OnnxRuntimeBackend(config.server.inference_threads)
    embedder = AudioEmbedder(model, backend, pipeline)
    backend.load(embedder.key, model)
    if batching:
        observe = (lambda size, depth: metrics.observe_batch(embedder.key, size, depth)) if metrics else None
        embedder.batcher = MicroBatcher(embedder.key, embedder.run_batch, config.batching, observe)
        embedder.batcher.start()
    return embedder
