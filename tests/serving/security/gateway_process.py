"""``toitsu serve`` as a child process on a free port, for tests that must kill it or read its files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import REPO


class GatewayProcess:
    def __init__(self, models: Path, var: Path, *settings: str, modalities: tuple[str, ...] = ("speaker",)) -> None:
        self.var = var
        self.log = var.parent / f"{var.name}-gateway.log"
        disabled = [f"{m}.enabled=false" for m in ("speaker", "sound", "face") if m not in modalities]
        argv = [sys.executable, "-m", "toitsu", "serve", "--port", "0", "--metrics-port", "0"]
        argv += ["--models", str(models), "--var", str(var)]
        for setting in (*disabled, "server.max_message_mb=8", *settings):
            argv += ["--set", setting]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert "listening on" in line, f"the gateway did not start: {line!r}; see {self.log}"
        self.target = line.strip().rsplit(" ", 1)[-1]
        self.channel = grpc.insecure_channel(self.target, options=[("grpc.max_send_message_length", 16 << 20)])
        self._wait_serving(90)

    def _wait_serving(self, seconds: float) -> None:
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            assert self.proc.poll() is None, f"the gateway exited; see {self.log}"
            time.sleep(0.2)
        raise AssertionError(f"the gateway was not SERVING within {seconds} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (no checkpoint, no close)."""
        self.channel.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
