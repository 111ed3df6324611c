"""The gateway process: gRPC server, health, reflection, metrics, loading and graceful shutdown.

The server listens at once and reports NOT_SERVING (health) / UNAVAILABLE (RPCs) until the
models and galleries are loaded in the background; SIGTERM/SIGINT flip health back to
NOT_SERVING, give in-flight RPCs ``grace_seconds``, drain the batchers and snapshot the galleries.

The services are the entries of ``serving.services.registry.SERVICES``. Each enabled modality
([speaker], [sound], [face]) loads on its own thread; a service's health is SERVING once the
modalities it needs are, and the server-wide health ("") only when every enabled modality is. A
modality that fails to load leaves the others serving and answers UNAVAILABLE saying why.

A backend that is unavailable at start (a Triton server not up yet), or a model that a running
build has not published yet (``make serve`` builds the sound model in the background), is retried
every ``server.load_retry_seconds`` while the modality stays NOT_SERVING; any other load failure
is final. Once loaded, the backend's readiness is polled every ``server.health_interval_seconds``
into health: NOT_SERVING while Triton (or its model) is down, SERVING again when it is back.

Each modality loads from its gallery generation's ``ACTIVE`` state when an activation wrote one
(model, version and folder; ``serving.gallery.generations``, after its crash recovery), else from
the configuration. ``activator`` (``serving.activation.Activator``) re-embeds a gallery for a new
model version and swaps :meth:`Gateway.modality`'s answer atomically (:meth:`swap_modality`); an
RPC keeps the modality object it fetched, so it finishes on the version it started with.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serving.activation import Activator
from serving.audit import AuditLog
from serving.audit.trail import interceptors as audit_interceptors
from serving.backup_schedule import BackupScheduler
from serving.config import Config, ConfigError
from serving.errors import Unavailable
from serving.gallery import generations
from serving.interceptors import ErrorsAndMetrics
from serving.jobs.supervisor import JobSupervisor
from serving.loader import (
    MODALITIES,
    ModelBeingBuilt,
    enabled_modalities,
    gallery_root,
    load_modality,
    stop_modality,
)
from serving.metrics import Metrics
from serving.modality import AudioModality, FaceModality
from serving.security.auth import Authenticator
from serving.security.ratelimit import RateLimiter
from serving.security.tls import ReloadingCredentials, tls_enabled
from serving.security.tokens import TokenStore
from serving.services.model_activation import settle as settle_job
from serving.services.registry import SERVICES

log = logging.getLogger("toitsu.server")


def is_loopback(host: str) -> bool:
    """True for a host that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self._modalities: dict[str, AudioModality | FaceModality] = {}
        self._errors: dict[str, BaseException] = {}
        self._waiting: dict[str, BaseException] = {}  # transient reasons loading is being retried
        self._ready: dict[str, bool] = {}  # backend readiness of each loaded modality
        self._loaded = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._health_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self.activator = Activator(self)
        self.backups = BackupScheduler(self, self.metrics)  # scheduled backups, the backup-age gauge
        self.tokens = TokenStore(config.tokens_path)
        self.limiter = RateLimiter.configured(config.auth.rate_per_second, config.auth.burst)
        self.tls: ReloadingCredentials | None = None
        audit = config.audit
        self.audit = (
            AuditLog(config.audit_path, audit.retention_days, audit.prune_interval_seconds) if audit.enabled else None
        )
        self._server: grpc.Server | None = None
        self.port = 0
        # An activation job running when the gateway died is settled from the generations' ACTIVE file.
        self.jobs = JobSupervisor(
            config.var_dir / "jobs", config.jobs, config.models_dir, settle=lambda job: settle_job(config, job)
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, background_load: bool = True) -> int:
        """Bind and start serving (health NOT_SERVING until loaded); returns the bound port."""
        cfg = self.config.server
        self._check_exposure()
        limit = int(cfg.max_message_mb * 1024 * 1024)
        authenticator = Authenticator(self.tokens, self.config.auth.open_services, self.limiter)
        # The audit trail's recorder wraps the Authenticator (refusals are audited too); its collector
        # reads the ids of the decoded requests and replies (serving.audit.trail).
        recorder, collector = audit_interceptors(self.audit, self.tokens, authenticator.is_open)
        if self.audit is not None:
            self.audit.start()  # prunes past audit.retention_days now, then periodically
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.max_workers, thread_name_prefix="rpc"),
            # Authentication first: a refused RPC never reaches the servicers nor decodes its request.
            interceptors=[*recorder, authenticator, *collector, ErrorsAndMetrics(self.metrics)],
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        for service in SERVICES.values():
            service.add_to_server(service.make_servicer(self), self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (
                *(s.full_name for s in SERVICES.values()),
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        self._refresh_health()
        if self.tls is not None:
            self.port = self._server.add_secure_port(f"{cfg.host}:{cfg.port}", self.tls.credentials)
        else:
            self.port = self._server.add_insecure_port(f"{cfg.host}:{cfg.port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {cfg.host}:{cfg.port}")
        self._server.start()
        self.jobs.start()
        self.metrics.serve(cfg.metrics_host, cfg.metrics_port)
        self.backups.start()
        mode = "plaintext" if self.tls is None else "mutual TLS" if cfg.tls_client_ca else "TLS"
        log.info("listening on %s:%d, %s (loading models)", cfg.host, self.port, mode)
        if background_load:
            threading.Thread(target=self.load, name="loader", daemon=True).start()
        else:
            self.load()
        return self.port

    def _check_exposure(self) -> None:
        """TLS credentials; no tokens: open, acceptable on loopback or over TLS only, unless explicitly allowed."""
        host = self.config.server.host
        if tls_enabled(self.config.server):
            self.tls = ReloadingCredentials(self.config.server)
        if self.tokens.configured():
            log.info("bearer tokens required (token store %s)", self.tokens.path)
            return
        if is_loopback(host):
            log.warning(
                "no tokens configured (%s): serving OPEN, without authentication, on loopback", self.tokens.path
            )
            return
        if self.tls is not None:
            log.warning("no tokens configured: serving OPEN (over TLS) on %s", host)
            return
        if not self.config.server.allow_insecure_remote:
            raise ConfigError(
                f"refusing to listen on {host} (not loopback) with no tokens and no TLS: anyone who can reach it could "
                "read and change the galleries. Create a token "
                "(`toitsu tokens create --local --subject S --role admin`), or listen on 127.0.0.1, or set "
                "server.allow_insecure_remote = true to accept the risk"
            )
        log.warning("no tokens configured: serving OPEN on %s (server.allow_insecure_remote = true)", host)

    def load(self) -> None:
        """Load every enabled modality (each on its own thread) while watching backend readiness."""
        threads = [
            threading.Thread(target=self._load_one, args=(name,), name=f"load-{name}", daemon=True)
            for name in enabled_modalities(self.config)
        ]
        for thread in threads:
            thread.start()
        # Watched from the start, not once all have loaded: the sound model may take minutes to be
        # built, and a Triton that goes down meanwhile must still turn speaker and face NOT_SERVING.
        if threads and self.config.server.health_interval_seconds > 0 and not self._stopping.is_set():
            threading.Thread(target=self._watch_backends, name="health", daemon=True).start()
        for thread in threads:
            thread.join()
        self._loaded.set()

    def _load_one(self, name: str) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    state = generations.recover(gallery_root(self.config, name))
                    if state is not None:
                        active = state.active
                        log.info("%s: active gallery generation %s (%s)", name, active.folder, active.binding)
                    generation = state.active if state is not None else None
                    modality = load_modality(self.config, name, self.metrics, generation=generation)
                    break
                except Unavailable as exc:  # a backend not up yet, a model not built yet: NOT_SERVING, retry
                    previous = self._waiting.get(name)
                    self._waiting[name] = exc
                    if previous is None or str(previous) != str(exc):  # once per reason, not every retry
                        log.warning(
                            "%s: %s; retrying every %g s", name, exc.message, self.config.server.load_retry_seconds
                        )
                    self._stopping.wait(self.config.server.load_retry_seconds)
            else:
                return
            self._waiting.pop(name, None)
            self._install(name, modality)
            log.info(
                "%s: serving %s v%d; %d enrolled",
                name,
                modality.card.name,
                modality.card.version,
                len(modality.gallery),
            )
        except BaseException as exc:  # reported by health and by every RPC, not fatal to the process
            self._errors[name] = exc
            log.exception("%s: loading failed; its service stays NOT_SERVING", name)
        finally:
            self._refresh_health()

    def _watch_backends(self) -> None:
        """Backend readiness (Triton connection and model) → health, until shutdown."""
        while not self._stopping.wait(self.config.server.health_interval_seconds):
            for name, modality in list(self._modalities.items()):
                embedder = modality.embedder
                ready = embedder.backend.ready(embedder.key)
                if ready != self._ready.get(name):
                    log.warning(
                        "model %s is %s",
                        embedder.key,
                        "ready again: SERVING" if ready else "not ready in its backend: NOT_SERVING until it is back",
                    )
                    self._ready[name] = ready
                    self._refresh_health()

    def _install(self, name: str, modality: AudioModality | FaceModality) -> AudioModality | FaceModality | None:
        with self._swap_lock:
            old = self._modalities.get(name)
            self._modalities[name], self._ready[name] = modality, True
            gallery = modality.gallery
            self.metrics.gallery_size.labels(name).set_function(lambda: len(gallery))
        return old

    def swap_modality(self, name: str, new: AudioModality | FaceModality) -> AudioModality | FaceModality:
        """Serve ``new`` for ``name`` from now on (the activation's in-memory swap); the old one,
        which requests in flight keep using."""
        old = self._install(name, new)
        if old is None:
            raise Unavailable(f"the {name} modality was not loaded")
        self._refresh_health()
        log.info("%s: now serving %s v%d (was %s)", name, new.card.name, new.card.version, old.binding)
        return old

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """True once every enabled modality has loaded (False after a timeout or a load failure)."""
        return self._loaded.wait(timeout) and not self._errors

    def modality(self, name: str) -> AudioModality | FaceModality:
        if name in self._modalities:
            return self._modalities[name]
        if not getattr(self.config, name).enabled:
            raise Unavailable(f"the {name} service is disabled on this gateway ({name}.enabled = false)")
        if name in self._errors:
            raise Unavailable(f"the {name} model failed to load: {self._errors[name]}")
        waiting = self._waiting.get(name)
        if isinstance(waiting, ModelBeingBuilt):
            raise Unavailable(waiting.message)
        if waiting is not None:
            raise Unavailable(f"the gateway is waiting for its inference backend: {waiting}")
        raise Unavailable("the gateway is still loading its models and galleries; retry shortly")

    def active_models(self) -> dict[str, tuple[str, int]]:
        return {name: (m.card.name, m.card.version) for name, m in list(self._modalities.items())}

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown; idempotent."""
        if self._stopped.is_set():
            return
        with self._health_lock:
            self._stopping.set()
        self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._server is not None:
            self._server.stop(self.config.server.grace_seconds if grace is None else grace).wait()
        self.jobs.stop()
        self.backups.stop(timeout=self.config.server.grace_seconds)  # a backup under way finishes first
        if self.audit is not None:  # after the server: every RPC it let finish has its row
            self.audit.close()
        for modality in self._modalities.values():
            stop_modality(modality)
        self.activator.close()
        self.metrics.close()
        self._stopped.set()
        log.info("stopped")

    def _refresh_health(self) -> None:
        """Each service SERVING when its modality is loaded and its backend ready; "" when all are."""
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        with self._health_lock:  # never SERVING again once shutdown has begun
            if self._stopping.is_set():
                return
            up = {name: name in self._modalities and self._ready.get(name, False) for name in MODALITIES}
            for service in SERVICES.values():
                self.health.set(service.full_name, serving if all(up[n] for n in service.needs) else not_serving)
            enabled = enabled_modalities(self.config)
            self.health.set("", serving if enabled and all(up[n] for n in enabled) else not_serving)

    def _set_all(self, status: int) -> None:
        for service in ("", *(s.full_name for s in SERVICES.values())):
            self.health.set(service, status)
