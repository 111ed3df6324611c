"""The gateway process: gRPC server, health, reflection, metrics, loading and graceful shutdown.

The server listens at once and reports NOT_SERVING (health) / UNAVAILABLE (RPCs) until the
models and galleries are loaded in the background; SIGTERM/SIGINT flip health back to
NOT_SERVING, give in-flight RPCs ``grace_seconds``, drain the batchers and snapshot the galleries.
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
        self._loaded = threading.Event()
        self._stopped = threading.Event()
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
            self._speaker = load_speaker(self.config, self.metrics)
            self._set_health(health_pb2.HealthCheckResponse.SERVING)
            log.info("serving %s v%d; %d speakers enrolled", self._speaker.card.name, self._speaker.card.version,
                     len(self._speaker.gallery))
        except BaseException as exc:  # reported by health and by every RPC, not fatal to the process
            self._load_error = exc
            log.exception("loading failed; the gateway stays NOT_SERVING")
        finally:
            self._loaded.set()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout) and self._load_error is None

    def speaker(self) -> AudioModality:
        if self._speaker is not None:
            return self._speaker
        if self._load_error is not None:
            raise Unavailable(f"the speaker model failed to load: {self._load_error}")
        raise Unavailable("the gateway is still loading its models and galleries; retry shortly")

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown; idempotent."""
        if self._stopped.is_set():
            return
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._server is not None:
            self._server.stop(self.config.server.grace_seconds if grace is None else grace).wait()
        if self._speaker is not None:
            if self._speaker.embedder.batcher is not None:
                self._speaker.embedder.batcher.stop()
            self._speaker.gallery.close()
        self.metrics.close()
        self._stopped.set()
        log.info("stopped")

    def _set_health(self, status: int) -> None:
        for service in ("", SPEAKER_SERVICE):
            self.health.set(service, status)
