"""Building a served modality ([speaker], [sound], [face]) from the configuration: model
repository → backend → pipeline → batcher → gallery bound to the model version.

Where the gallery lives and which model version serves it come from the modality's gallery
generation when an activation chose them (``serving.gallery.generations``, passed as
``generation``), else from the configuration and the legacy folder ``var/galleries/<modality>``.

A model that is missing because it is still being built (``toitsu models build-defaults``, which
``make serve`` runs in the background for the sound model) is reported as :class:`ModelBeingBuilt`,
an Unavailable the gateway retries, instead of a final NotFound; see "builds in progress" below.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from contracts.card import CardError, FaceCard
from serving.audio.pipeline import AudioLimits, AudioPipeline
from serving.audio.vad import SileroVad
from serving.config import Config
from serving.embedders import AudioEmbedder, ImageEmbedder
from serving.errors import ModelMismatch, NotFound, Unavailable
from serving.gallery import Gallery, ModelBinding
from serving.gallery.binding import stored_dim
from serving.gallery.checkup import check_at_start, damaged_store
from serving.gallery.generations import Generation
from serving.inference.backend import InferenceBackend
from serving.inference.batcher import BatchingConfig, MicroBatcher
from serving.inference.onnxruntime_backend import OnnxRuntimeBackend
from serving.metrics import Metrics
from serving.modality import AudioModality, FaceModality
from serving.models.repository import ModelRepository
from serving.scoring import load_scorer
from serving.vision.decode import ImageLimits
from serving.vision.landmarks import ShapePredictor5
from serving.vision.mtcnn import MtcnnDetector
from serving.vision.pipeline import FacePipeline
from serving.vision.quality import QualityConfig

log = logging.getLogger("toitsu.loader")

E = TypeVar("E", AudioEmbedder, ImageEmbedder)
Modality = AudioModality | FaceModality


class ModelBeingBuilt(Unavailable):
    """The configured model has no version yet and a running build will publish it."""


def load_audio_modality(
    config: Config, name: str, metrics: Metrics | None = None, folder: Path | None = None
) -> AudioModality:
    """An audio modality (``speaker`` or ``sound``): model with its pipeline, gallery (in ``folder``,
    default the legacy one)."""
    repo = ModelRepository(config.models_dir)
    embedder = audio_embedder(config, name, repo, batching=True, metrics=metrics)
    card = embedder.model.card
    try:
        if card.calibration_section is None or card.embedding_dim is None:
            raise CardError(f"{card.name} v{card.version} has no calibration; a server never guesses a threshold")
        kind = getattr(getattr(config, name), "scoring", "cosine")
        scorer = load_scorer(kind, card, embedder.model.directory)
        gallery = open_gallery(config, name, card.embedding_dim, ModelBinding(card.name, card.version), folder)
    except BaseException:
        stop_embedder(embedder)
        raise
    return AudioModality(embedder, gallery, scorer)


def load_face(config: Config, metrics: Metrics | None = None, folder: Path | None = None) -> FaceModality:
    """The face modality: detector, landmarks and chip geometry, embedder with its batcher, gallery."""
    repo = ModelRepository(config.models_dir)
    embedder = image_embedder(config, repo, batching=True, metrics=metrics)
    card = embedder.model.card
    try:
        if card.calibration_section is None or card.embedding_dim is None:
            raise CardError(f"{card.name} v{card.version} has no calibration; a server never guesses a threshold")
        pipeline, detector = face_pipeline(config, repo, embedder)
        gallery = open_gallery(config, "face", card.embedding_dim, ModelBinding(card.name, card.version), folder)
    except BaseException:
        stop_embedder(embedder)
        raise
    limits = ImageLimits(max_pixels=int(config.face.max_megapixels * 1e6))
    return FaceModality(embedder, pipeline, gallery, detector, limits)


# The modalities a gateway can serve, each named after its config section; in load order.
MODALITIES: dict[str, Callable[[Config, Metrics | None, Path | None], Modality]] = {
    "speaker": lambda config, metrics, folder: load_audio_modality(config, "speaker", metrics, folder),
    "sound": lambda config, metrics, folder: load_audio_modality(config, "sound", metrics, folder),
    "face": load_face,
}


def enabled_modalities(config: Config) -> list[str]:
    return [name for name in MODALITIES if getattr(config, name).enabled]


def load_modality(
    config: Config, name: str, metrics: Metrics | None = None, *, generation: Generation | None = None
) -> Modality:
    """The ``name`` modality (``speaker``, ``sound`` or ``face``) ready to serve: model, pipeline, gallery.

    With ``generation``, its model and version replace the configured ones and its folder (under
    :func:`gallery_root`) holds the gallery. Raises ModelBeingBuilt while its model is missing and
    a running build will publish it."""
    folder = None
    if generation is not None:
        config = with_model(config, name, generation.model, generation.version)
        folder = generation.path(gallery_root(config, name))
    check_not_being_built(config.models_dir, name, getattr(config, name).model)
    return MODALITIES[name](config, metrics, folder)


def with_model(config: Config, name: str, model: str, version: int) -> Config:
    """``config`` with the ``name`` section serving ``model`` at ``version``."""
    section = dataclasses.replace(getattr(config, name), model=model, version=version)
    return dataclasses.replace(config, **{name: section})


def gallery_root(config: Config, modality: str) -> Path:
    """The modality's gallery root: the legacy gallery and every generation folder live here."""
    return config.var_dir / "galleries" / modality


def stop_modality(modality: Modality) -> None:
    """Stop a modality's batcher and backend and close its gallery (each step even if one fails)."""
    try:
        stop_embedder(modality.embedder)
    finally:
        modality.gallery.close()


def face_pipeline(config: Config, repo: ModelRepository, embedder: ImageEmbedder) -> tuple[FacePipeline, ModelBinding]:
    """Detection and alignment for the embedder's chip geometry (its card's ``image`` section)."""
    section = config.face
    _, threads = inference_layout(config)
    stages = [repo.get(f"{section.detector_model}-{stage}") for stage in ("pnet", "rnet", "onet")]
    detector = MtcnnDetector(*(m.model_path for m in stages), threads=threads, min_face_size=section.min_face_size)
    landmarks = ShapePredictor5.load(repo.get(section.landmarks_model).model_path) if section.landmarks_model else None
    quality = QualityConfig(floor=section.min_quality)
    pipeline = FacePipeline(detector, landmarks, embedder.alignment, quality, min_probability=section.min_probability)
    return pipeline, ModelBinding(section.detector_model, stages[-1].card.version)


def image_embedder(
    config: Config, repo: ModelRepository, *, batching: bool, metrics: Metrics | None = None
) -> ImageEmbedder:
    """The configured face model on its backend; the micro-batcher started if asked."""
    section = config.face
    model = repo.get(section.model, section.version or None)
    if not isinstance(model.card, FaceCard):
        raise CardError(f"{model.directory}: not a face model")
    batching_config, threads = inference_layout(config)
    backend = make_backend(config, section.backend, threads)
    return _started(ImageEmbedder(model, backend), batching_config if batching else None, metrics)


def stop_embedder(embedder: AudioEmbedder | ImageEmbedder) -> None:
    if embedder.batcher is not None:
        embedder.batcher.stop()
    embedder.backend.close()


def audio_limits(config: Config, name: str) -> AudioLimits:
    """Speakers use the [audio] section; sounds their own length limits (whole clips, no VAD)."""
    if name == "sound":
        return dataclasses.replace(
            config.audio, min_speech_seconds=config.sound.min_seconds, max_seconds=config.sound.max_seconds
        )
    return config.audio


def open_gallery(config: Config, modality: str, dim: int, binding: ModelBinding, folder: Path | None = None) -> Gallery:
    """The modality's gallery (in ``folder``, default the legacy one), bound to ``binding`` when it is
    new or empty.

    A gallery holding another model version's templates still opens (with its own binding): the
    server stays up, Embed works, and every request that would compare embeddings across versions
    is refused with FAILED_PRECONDITION naming both, until that version is activated (which
    re-embeds the gallery, serving.activation) or the configured version matches it again; a
    gallery of another embedding size opens at its own size. Refusing to start would take Delete,
    List and the activation itself down too.

    Before it is returned the gallery passes SQLite's integrity check and index = store
    (``serving.gallery.checkup.check_at_start``; ``backups.verify_at_start``).
    """
    root = folder if folder is not None else gallery_root(config, modality)
    try:
        gallery = Gallery.open(root, modality=modality, dim=dim, model=binding, config=config.gallery)
    except Unavailable as exc:  # a damaged store is final (not retried), and says which backup restores it
        raise damaged_store(root, modality, config.paths.backups) or exc from None
    except ModelMismatch as exc:
        log.warning("%s; refusing to score against it until that model version is activated", exc)
        held = stored_dim(root) or dim  # another embedding size: open it as it is, for Delete/List/activation
        gallery = Gallery.open(root, modality=modality, dim=held, model=None, config=config.gallery)
    if config.backups.verify_at_start:
        try:
            check_at_start(gallery, modality, config.paths.backups)
        except BaseException:
            gallery.close()
            raise
    return gallery


def audio_embedder(
    config: Config, name: str, repo: ModelRepository, *, batching: bool, metrics: Metrics | None = None
) -> AudioEmbedder:
    """The modality's configured model with its pipeline; the micro-batcher started if asked."""
    section = getattr(config, name)
    model = repo.get(section.model, section.version or None)
    if model.card.modality != name or not model.card.sample_rate:
        raise CardError(f"{model.directory}: not a {name} model with an audio sample rate")
    vad = None
    if section.use_vad:
        vad = SileroVad(repo.get(section.vad_model).model_path)
        vad.load()
    pipeline = AudioPipeline(vad, model.card.sample_rate, audio_limits(config, name))
    batching_config, threads = inference_layout(config)
    backend = make_backend(config, section.backend, threads)
    return _started(AudioEmbedder(model, backend, pipeline), batching_config if batching else None, metrics)


def _started(embedder: E, batching: BatchingConfig | None, metrics: Metrics | None) -> E:
    """The embedder's model loaded into its backend (closed again on failure); with
    ``batching``, its micro-batcher started."""
    try:
        embedder.backend.load(embedder.key, embedder.model)
    except BaseException:
        embedder.backend.close()
        raise
    if batching is not None:
        observe = (lambda size, depth: metrics.observe_batch(embedder.key, size, depth)) if metrics else None
        embedder.batcher = MicroBatcher(embedder.key, embedder.run_batch, batching, observe)
        embedder.batcher.start()
    return embedder


def make_backend(config: Config, kind: str, threads: int) -> InferenceBackend:
    """The inference backend a model's section names: embedded ONNX Runtime or a Triton server."""
    if kind == "triton":
        from serving.inference.triton_backend import TritonBackend  # lazy: the `triton` extra

        t = config.triton
        return TritonBackend(
            t.url,
            timeout_s=t.timeout_seconds,
            probe_timeout_s=t.probe_timeout_seconds,
            retries=t.retries,
            retry_backoff_s=t.retry_backoff_ms / 1000.0,
            reconnect_backoff_ms=t.reconnect_backoff_ms,
            ssl=t.tls,
            root_certificates=t.root_certificates or None,
            certificate_chain=t.certificate_chain or None,
            private_key=t.private_key or None,
        )
    return OnnxRuntimeBackend(threads)


def inference_layout(config: Config) -> tuple[BatchingConfig, int]:
    """(batching with ``workers`` resolved, ONNX Runtime intra-op threads per call).

    By default one batch in flight per core, each single-threaded: on the 2-core reference host
    that gave 6-12 % more verifications/s at concurrency 8 than one 2-thread batch at a time,
    because small batches parallelise poorly inside ORT and the cores otherwise idle while the
    gRPC threads run the VAD (bench/bench_verify.py). Set both explicitly to trade throughput for
    single-request latency (one worker, all cores: 17.6 instead of 22.8 ms p50 there).
    """
    cores = os.cpu_count() or 1
    workers = config.batching.workers or min(cores, 4)
    threads = config.server.inference_threads or max(1, cores // workers)
    return dataclasses.replace(config.batching, workers=workers), threads


# -- builds in progress ------------------------------------------------------------------------
# A build of one part of the default pack keeps ``<models>/.building/<part>.lock`` (hidden from the
# repository scan): JSON {"models", "state", "log", "pid"}, flock-ed exclusively by the building
# process for as long as it runs. The kernel drops the lock when that process ends, however it
# ends, so a crashed build is told from a running one without trusting a pid. The file is
# rewritten in place and never removed or replaced: a new inode would let a second builder lock
# it while the first still held the old one.
BUILDS_DIR = ".building"


@dataclasses.dataclass(frozen=True)
class BuildStatus:
    part: str
    running: bool  # its lock is held: the build is under way
    state: str  # what the builder last wrote: "running", "published", "failed" or "interrupted"
    log: str  # where a background build writes its output ("" in the foreground)
    pid: int | None


def build_status(models_dir: Path, model: str) -> BuildStatus | None:
    """The last recorded build of the part that publishes ``model`` (None if there is none)."""
    folder = Path(models_dir) / BUILDS_DIR
    for marker in sorted(folder.glob("*.lock")) if folder.is_dir() else ():
        info = _read_marker(marker)
        if model in info.get("models", ()):
            return BuildStatus(
                marker.stem, _is_locked(marker), str(info.get("state", "")), str(info.get("log", "")), info.get("pid")
            )
    return None


def check_not_being_built(models_dir: Path, modality: str, model: str) -> None:
    """ModelBeingBuilt while ``model`` has no version and a build of it runs; NotFound naming the
    log when its build stopped before publishing it; nothing otherwise (loading then reports)."""
    repo = ModelRepository(models_dir)
    if repo.versions(model):
        return
    status = build_status(models_dir, model)
    if status is None or repo.versions(model):  # again: it may have been published in between
        return
    where = f", log {status.log}" if status.log else ""
    if status.running:
        raise ModelBeingBuilt(
            f"the {modality} model {model} is still being built (pid {status.pid}{where}); "
            f"the {modality} service reports SERVING once it is published"
        )
    if status.state != "published":
        raise NotFound(
            f"the build of the {modality} model {model} stopped before publishing it "
            f"(state {status.state or 'unknown'}{where}); `make models` builds it"
        )


class BuildLock:
    """The builder's side of a part's marker: held for the whole build, states written into it."""

    def __init__(
        self, models_dir: Path, part: str, models: Sequence[str], log: str = "", fd: int | None = None
    ) -> None:
        self.path = Path(models_dir) / BUILDS_DIR / f"{part}.lock"
        self.models, self.log = list(models), log
        self.fd = fd  # set: a descriptor whose lock is already held (inherited by a background build)

    def acquire(self, *, wait: bool) -> bool:
        """Take the lock (waiting for another build of the part when ``wait``); False when busy."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for _ in range(1 if wait else 10):  # a reader's brief shared lock is not a builder
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                self.fd = fd
                return True
            except BlockingIOError:
                time.sleep(0.05)
        os.close(fd)
        return False

    def holder(self) -> dict[str, Any]:
        """What the current (or last) builder wrote."""
        return _read_marker(self.path)

    def write(self, state: str, pid: int | None = None) -> None:
        """Record ``state`` in place, padded over the old text so a reader never sees an empty file."""
        if self.fd is None:
            raise RuntimeError(f"{self.path}: write() before acquire()")
        data = json.dumps({"models": self.models, "state": state, "log": self.log, "pid": pid or os.getpid()}).encode()
        old = os.fstat(self.fd).st_size
        os.pwrite(self.fd, data.ljust(old), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_bytes() or b"{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _is_locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops our own shared lock
