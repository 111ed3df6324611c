"""Prometheus metrics (DESIGN §3 "Observability"), in a registry of the gateway's own so that
several gateways in one process (tests) do not collide."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class LiveTraffic:
    """The requests a gateway is serving now and has started, for work that should give way to
    them (an activation's re-embed pauses between chunks only while there is live traffic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = 0
        self._in_flight = 0

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Count one request from entering this block until leaving it."""
        with self._lock:
            self._started += 1
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def mark(self) -> int:
        """A position to ask :meth:`since` about later."""
        return self._started

    def since(self, mark: int) -> bool:
        """Whether a request started after ``mark`` or one is in flight now."""
        with self._lock:
            return self._started != mark or self._in_flight > 0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.live = LiveTraffic()  # data-plane RPCs (serving.interceptors), not a Prometheus series
        self.requests = Counter(
            "toitsu_requests_total", "RPCs by method and status code", ["method", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "toitsu_request_seconds",
            "RPC latency by method",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "toitsu_batch_size",
            "Items per inference call",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "toitsu_queue_depth", "Requests waiting for a batch", ["model"], registry=self.registry
        )
        self.gallery_size = Gauge("toitsu_gallery_size", "Enrolled identities", ["modality"], registry=self.registry)
        # +Inf while a modality has no usable backup under paths.backups (serving.backups), so that
        # an alert on the age (`> 2 * interval`) fires for a missing backup as for a stale one.
        self.backup_age = Gauge(
            "toitsu_gallery_backup_age_seconds",
            "Age of the newest usable backup under paths.backups (+Inf: none)",
            ["modality"],
            registry=self.registry,
        )
        self.backup_failures = Counter(
            "toitsu_gallery_backup_failures_total",
            "Scheduled backups that failed or did not verify",
            ["modality"],
            registry=self.registry,
        )
        self._server: WSGIServer | None = None

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)

    def observe_batch(self, model: str, size: int, depth: int) -> None:
        self.batch_size.labels(model).observe(size)
        self.queue_depth.labels(model).set(depth)

    def serve(self, host: str, port: int) -> None:
        """Expose ``/metrics`` over HTTP (a daemon thread); ``port=0`` leaves it off."""
        if port:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
