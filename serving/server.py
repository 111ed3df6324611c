"""The gateway process: gRPC server, health, reflection, metrics, loading and graceful shutdown.

The server listens at once and reports NOT_SERVING (health) / UNAVAILABLE (RPCs) until the
models and galleries are loaded in the background; SIGTERM/SIGINT flip health back to
NOT_SERVING, give in-flight RPCs ``grace_seconds``, drain the batchers and snapshot the galleries.

A backend that is unavailable at start (a Triton server not up yet) is retried every
``server.load_retry_seconds`` while the gateway stays NOT_SERVING; any other load failure is
final. Once loaded, the backend's readiness is polled every ``server.health_interval_seconds``
into health: NOT_SERVING while Triton (or its model) is down, SERVING again when it is back.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from protos.v1 import speaker_pb2, speaker_pb2_grpc
from serving.config import Config
from serving.errors import Unavailable
from serving.interceptors import ErrorsAndMetrics
from serving.loader import load_speaker
from serving.metrics import Metrics
from serving.modality import AudioModality
from serving.services.speaker import SpeakerServicer

log = logging.getLogger("toitsu.server")
SPEAKER_SERVICE = speaker_pb2.DESCRIPTOR.services_by_name["SpeakerService"].full_name


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self._speaker: AudioModality | None = None
        self._load_error: BaseException | None = None
        self._waiting: BaseException | None = None  # the transient reason loading is being retried
        self._loaded = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._health_lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, background_load: bool = True) -> int:
        """Bind and start serving (health NOT_SERVING until loaded); returns the bound port."""
        cfg = self.config.server
        limit = int(cfg.max_message_mb * 1024 * 1024)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.max_workers, thread_name_prefix="rpc"),
            interceptors=[ErrorsAndMetrics(self.metrics)],
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                     ("grpc.so_reuseport", 0)])
        speaker_pb2_grpc.add_SpeakerServiceServicer_to_server(
            SpeakerServicer(self.speaker, cfg.default_deadline_seconds, self.config.speaker.store_media), self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SPEAKER_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = self._server.add_insecure_port(f"{cfg.host}:{cfg.port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {cfg.host}:{cfg.port}")
        self._server.start()
        self.metrics.serve(cfg.host, cfg.metrics_port)
        log.info("listening on %s:%d (loading models)", cfg.host, self.port)
        if background_load:
            threading.Thread(target=self.load, name="loader", daemon=True).start()
        else:
            self.load()
        return self.port

    def load(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._speaker = load_speaker(self.config, self.metrics)
                    break
                except Unavailable as exc:  # a backend that is not up yet: stay NOT_SERVING and retry
                    self._waiting = exc
                    log.warning("%s; retrying in %g s", exc.message, self.config.server.load_retry_seconds)
                    self._stopping.wait(self.config.server.load_retry_seconds)
            else:
                return
            self._waiting = None
            self._set_health(health_pb2.HealthCheckResponse.SERVING)
            log.info("serving %s v%d; %d speakers enrolled", self._speaker.card.name, self._speaker.card.version,
                     len(self._speaker.gallery))
            if self.config.server.health_interval_seconds > 0:
                threading.Thread(target=self._watch_backend, name="health", daemon=True).start()
        except BaseException as exc:  # reported by health and by every RPC, not fatal to the process
            self._load_error = exc
            log.exception("loading failed; the gateway stays NOT_SERVING")
        finally:
            self._loaded.set()

    def _watch_backend(self) -> None:
        """Backend readiness (Triton connection and model) → health, until shutdown."""
        embedder, serving = self._speaker.embedder, True
        while not self._stopping.wait(self.config.server.health_interval_seconds):
            ready = embedder.backend.ready(embedder.key)
            if ready != serving:
                log.warning("model %s is %s", embedder.key, "ready again: SERVING" if ready else
                            "not ready in its backend: NOT_SERVING until it is back")
                self._set_health(health_pb2.HealthCheckResponse.SERVING if ready
                                 else health_pb2.HealthCheckResponse.NOT_SERVING)
                serving = ready

    def wait_loaded(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout) and self._load_error is None

    def speaker(self) -> AudioModality:
        if self._speaker is not None:
            return self._speaker
        if self._load_error is not None:
            raise Unavailable(f"the speaker model failed to load: {self._load_error}")
        if self._waiting is not None:
            raise Unavailable(f"the gateway is waiting for its inference backend: {self._waiting}")
        raise Unavailable("the gateway is still loading its models and galleries; retry shortly")

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown; idempotent."""
        if self._stopped.is_set():
            return
        with self._health_lock:
            self._stopping.set()
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING, force=True)
        if self._server is not None:
            self._server.stop(self.config.server.grace_seconds if grace is None else grace).wait()
        if self._speaker is not None:
            if self._speaker.embedder.batcher is not None:
                self._speaker.embedder.batcher.stop()
            self._speaker.gallery.close()
            self._speaker.embedder.backend.close()
        self.metrics.close()
        self._stopped.set()
        log.info("stopped")

    def _set_health(self, status: int, force: bool = False) -> None:
        with self._health_lock:  # never SERVING again once shutdown has begun
            if self._stopping.is_set() and not force:
                return
            for service in ("", SPEAKER_SERVICE):
                self.health.set(service, status)
