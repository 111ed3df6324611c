"""The Prometheus endpoint binds to loopback by default, also when the gRPC port listens on every
interface; exposing it is its own setting."""

from __future__ import annotations

import socket
import urllib.request

from serving.server import Gateway
from tests.serving.security.conftest import _config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics_address(models_dir, var, **extra) -> tuple[str, str]:
    port = _free_port()
    gateway = Gateway(_config(models_dir, var, **{"server.metrics_port": str(port), **extra}))
    gateway.start(background_load=False)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "toitsu" in body  # the gateway's own metrics, not an empty registry
        return gateway.metrics._server.server_address[0], body
    finally:
        gateway.stop(grace=0)


def test_metrics_stay_on_loopback_when_grpc_listens_everywhere(models_dir, tmp_path):
    remote = {"server.host": "0.0.0.0", "server.allow_insecure_remote": "true"}
    address, _ = _metrics_address(models_dir, tmp_path / "a", **remote)
    assert address == "127.0.0.1"
    address, _ = _metrics_address(models_dir, tmp_path / "b", **remote, **{"server.metrics_host": "0.0.0.0"})
    assert address == "0.0.0.0"  # only when asked
