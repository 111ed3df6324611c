"""An independent client in another language (Node.js, @grpc/grpc-js, the .proto files loaded at run
time) authenticates with a bearer token over TLS against a real ``toitsu serve`` process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.security.tokens import TokenStore
from tests.conftest import REPO, SPEAKER_DIM, SPEAKER_MODEL
from tests.serving.security.test_tls import make_ca, make_leaf

CLIENT = REPO / "clients" / "node"


def _node(*args: str | Path) -> dict:
    """Runs the Node client; its one JSON line on stdout is the result."""
    node = shutil.which("node")
    if node is None or not (CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node or clients/node/node_modules is missing: run `make test` (it runs `npm ci` there)")
    done = subprocess.run([node, CLIENT / "embed.js", *map(str, args)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def tls_gateway(models_dir, tmp_path_factory):
    """``toitsu serve`` with TLS and one verify token; yields (target, CA file, token)."""
    folder = tmp_path_factory.mktemp("node-client")
    ca = make_ca(folder, "ca")
    cert, key = make_leaf(folder, "server", ca, "serverAuth")
    var = folder / "var"
    token, _ = TokenStore(var / "security" / "tokens.json").create("node-user", "verify")
    argv = [sys.executable, "-m", "toitsu", "serve", "--port", "0", "--metrics-port", "0",
            "--models", str(models_dir), "--var", str(var)]  # fmt: skip
    for setting in ("sound.enabled=false", "face.enabled=false", f"server.tls_cert={cert}", f"server.tls_key={key}"):
        argv += ["--set", setting]
    log = open(folder / "gateway.log", "wb")  # noqa: SIM115 - open for the process's lifetime
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert "listening on" in line, f"the gateway did not start: {line!r}; see {folder / 'gateway.log'}"
        target = line.strip().rsplit(" ", 1)[-1]
        _wait_serving(target, ca[0], proc)
        yield target, ca[0], token
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _wait_serving(target: str, ca: Path, proc: subprocess.Popen, seconds: float = 90) -> None:
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the gateway exited"
            try:
                if (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"the gateway was not SERVING within {seconds} s")


def _card_dimension(models_dir: Path, name: str, version: str) -> int:
    card = json.loads((models_dir / name / version / "card.json").read_text())
    (embedding,) = [o for o in card["outputs"] if o["role"] == "embedding"]
    return int(embedding["shape"][-1])


def test_node_client_embeds_with_a_token_over_tls(tls_gateway, models_dir, voices):
    target, ca, token = tls_gateway
    reply = _node("--target", target, "--ca", ca, "--token", token, "--wav", voices.path(0, 0))
    assert reply["ok"], reply
    assert reply["model"]["name"] == SPEAKER_MODEL
    # The served card says how wide an embedding is; the Node client counted the floats it received.
    assert reply["dim"] == _card_dimension(models_dir, reply["model"]["name"], reply["model"]["version"]) == SPEAKER_DIM


def test_node_client_with_a_wrong_or_no_token_is_unauthenticated(tls_gateway, voices):
    target, ca, token = tls_gateway
    for args in (("--token", token[:-1] + ("x" if token[-1] != "x" else "y")), ()):
        reply = _node("--target", target, "--ca", ca, *args, "--wav", voices.path(0, 0))
        assert not reply["ok"] and reply["code"] == "UNAUTHENTICATED", reply


def test_node_client_in_plaintext_is_refused(tls_gateway, voices):
    target, _, token = tls_gateway
    reply = _node("--target", target, "--plaintext", "--token", token, "--wav", voices.path(0, 0))
    assert not reply["ok"] and reply["code"] == "UNAVAILABLE", reply
