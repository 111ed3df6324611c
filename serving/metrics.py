"""Prometheus metrics (DESIGN §3 "Observability"), in a registry of the gateway's own so that
several gateways in one process (tests) do not collide."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
