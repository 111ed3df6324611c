"""Gateway → Triton, end to end: `toitsu serve` in a subprocess with ``speaker.backend = "triton"``
pointed at a real ``tritonserver`` (nvidia-pytriton's, python backend) that serves the generated
python-backend repository — so Triton loading it also validates the generated ``config.pbtxt``.

The gateway is started *before* Triton (it must wait NOT_SERVING and load once Triton is up);
embeddings and scores must match the embedded backend's within 1e-5; and Triton SIGKILLed in the
middle of a stream of requests must give UNAVAILABLE (never UNKNOWN or INTERNAL), NOT_SERVING, and
a gateway that recovers without a restart when Triton comes back on the same port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from export.triton_python_backend import write_triton_repository
from export.triton_server import LocalTriton, free_port
from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from serving.config import load_config
from serving.server import Gateway
from tests.conftest import REPO, SPEAKER_MODEL

pytestmark = pytest.mark.integration
WAIT_S = 60


class Stack:
    """Triton (killable, fixed port) + a `toitsu serve` subprocess using it + an embedded gateway."""

    def __init__(self, models: Path, root: Path) -> None:
        write_triton_repository(models, root / "repo", variant="python")
        self.triton = LocalTriton(root / "repo", port=free_port(), work=root / "triton")
        self.log = open(root / "gateway.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "toitsu",
                "serve",
                "--port",
                "0",
                "--metrics-port",
                "0",
                "--models",
                str(models),
                "--var",
                str(root / "var-triton"),
                "--set",
                "speaker.backend=triton",
                "--set",
                f"triton.url={self.triton.url}",
                "--set",
                "server.load_retry_seconds=0.5",
                "--set",
                "server.health_interval_seconds=0.25",
                "--set",
                "triton.timeout_seconds=20",
                "--set",
                "sound.enabled=false",
                "--set",
                "face.enabled=false",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.proc.stdout.readline().decode()
        assert "listening on" in line, f"gateway did not start: {line!r}; see {root / 'gateway.log'}"
        self.channel = grpc.insecure_channel(line.strip().rsplit(" ", 1)[-1])
        self.stub = speaker_pb2_grpc.SpeakerServiceStub(self.channel)
        self.embedded = Gateway(
            load_config(
                overrides={
                    "server.port": "0",
                    "server.metrics_port": "0",
                    "paths.models": str(models),
                    "paths.var": str(root / "var-embedded"),
                    "sound.enabled": "false",
                    "face.enabled": "false",
                }
            )
        )
        self.embedded.start(background_load=False)
        self.embedded_channel = grpc.insecure_channel(f"127.0.0.1:{self.embedded.port}")
        self.embedded_stub = speaker_pb2_grpc.SpeakerServiceStub(self.embedded_channel)

    def health(self) -> str:
        try:
            reply = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_health(self, status: str, timeout: float = WAIT_S) -> float:
        started = time.monotonic()
        while self.health() != status:
            assert time.monotonic() - started < timeout, f"gateway health not {status} after {timeout} s"
            time.sleep(0.1)
        return time.monotonic() - started

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        self.channel.close()
        self.embedded_channel.close()
        self.embedded.stop(grace=1)
        self.triton.stop()


@pytest.fixture(scope="module")
def stack(models_dir, tmp_path_factory):
    stack = Stack(models_dir, tmp_path_factory.mktemp("triton-e2e"))
    try:
        time.sleep(1.5)  # a few load attempts against a Triton that is not there yet
        stack.before = stack.health(), _verify_error(stack.stub, common_pb2.Audio(encoded=b"RIFF"))
        stack.triton.start(wait=120)
        stack.wait_health("SERVING")
        yield stack
    finally:
        stack.close()


def _verify_error(stub, clip: common_pb2.Audio) -> tuple[str, str]:
    try:
        stub.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id="nobody", audio=clip), timeout=10)
    except grpc.RpcError as exc:
        return exc.code().name, exc.details()
    return "OK", ""


def _embed(stub, clip: bytes) -> np.ndarray:
    return np.array(
        stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=common_pb2.Audio(encoded=clip)), timeout=60).embedding.values,
        dtype=np.float32,
    )


def test_the_gateway_waits_not_serving_until_triton_is_up(stack):
    health, (code, details) = stack.before
    assert health == "NOT_SERVING"
    assert code == "UNAVAILABLE" and "waiting for its inference backend" in details and stack.triton.url in details


def test_enroll_verify_identify_through_triton_match_the_embedded_backend(stack, voices):
    diffs = [
        np.abs(_embed(stack.stub, voices.clip(s, k)) - _embed(stack.embedded_stub, voices.clip(s, k))).max()
        for s in range(3)
        for k in (0, 2)
    ]
    assert max(diffs) <= 1e-5, diffs
    for stub in (stack.stub, stack.embedded_stub):
        for speaker in range(4):
            clips = [common_pb2.Audio(encoded=voices.clip(speaker, k)) for k in (0, 1)]
            assert stub.Enroll(
                speaker_pb2.EnrollSpeakerRequest(speaker_id=f"spk{speaker}", audio=clips), timeout=60
            ).created
    scores = {}
    for name, stub in (("triton", stack.stub), ("embedded", stack.embedded_stub)):
        genuine = stub.Verify(
            speaker_pb2.VerifySpeakerRequest(speaker_id="spk0", audio=common_pb2.Audio(encoded=voices.clip(0, 2))),
            timeout=60,
        )
        impostor = stub.Verify(
            speaker_pb2.VerifySpeakerRequest(speaker_id="spk0", audio=common_pb2.Audio(encoded=voices.clip(1, 2))),
            timeout=60,
        )
        assert genuine.decision.accepted and not impostor.decision.accepted
        assert genuine.model.name == SPEAKER_MODEL and genuine.model.version == 1
        found = stub.Identify(
            speaker_pb2.IdentifySpeakerRequest(audio=common_pb2.Audio(encoded=voices.clip(2, 3)), top_k=3), timeout=60
        )
        assert found.identified and found.best_id == "spk2"
        scores[name] = [genuine.decision.score, impostor.decision.score, *(c.score for c in found.candidates)]
    assert np.abs(np.array(scores["triton"]) - np.array(scores["embedded"])).max() <= 1e-5, scores


def test_triton_killed_mid_stream_gives_unavailable_and_the_gateway_recovers(stack, voices):
    stack.stub.Enroll(
        speaker_pb2.EnrollSpeakerRequest(speaker_id="stream", audio=[common_pb2.Audio(encoded=voices.clip(3, 0))]),
        timeout=60,
    )
    request = speaker_pb2.VerifySpeakerRequest(speaker_id="stream", audio=common_pb2.Audio(encoded=voices.clip(3, 1)))
    expected = stack.stub.Verify(request, timeout=60).decision.score
    outcomes: list[str] = []
    details: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def client() -> None:
        for _ in range(400):  # bounded; ends when the test says so
            if stop.is_set():
                return
            try:
                score = stack.stub.Verify(request, timeout=30).decision.score
                outcome = "OK" if abs(score - expected) <= 1e-5 else f"WRONG {score}"
            except grpc.RpcError as exc:
                outcome = exc.code().name
                with lock:
                    details.append(exc.details())
            with lock:
                outcomes.append(outcome)
            time.sleep(0.02)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        _wait_for(lambda: outcomes.count("OK") >= 6, "requests before the kill")
        stack.triton.kill()
        killed_at = len(outcomes)
        _wait_for(lambda: outcomes[killed_at:].count("UNAVAILABLE") >= 6, "UNAVAILABLE while Triton is down")
        stack.wait_health("NOT_SERVING", timeout=10)
        restarted = time.monotonic()
        stack.triton.start(wait=120)
        back_at = len(outcomes)
        stack.wait_health("SERVING")
        _wait_for(lambda: outcomes[back_at:].count("OK") >= 6, "requests after the restart")
        recovery = time.monotonic() - restarted
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    print(f"outcomes {dict(Counter(outcomes))}; recovered {recovery:.1f} s after the restart began")
    assert set(outcomes) <= {"OK", "UNAVAILABLE"}, sorted(set(outcomes))
    assert all("Triton at" in d or "not ready" in d for d in details), sorted(set(details))[:3]
    assert recovery < 150, recovery


def _wait_for(condition, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "variant, options",
    [
        ("onnxruntime", {}),
        ("onnxruntime", {"kind": "KIND_GPU", "instances": 2, "tensorrt_fp16": True}),
        ("tensorrt", {"kind": "KIND_GPU"}),
    ],
)
def test_configs_for_other_tritons_parse_in_the_real_server(models_dir, tmp_path, variant, options):
    """This Triton has the python backend only, so these variants cannot load here, but it must get
    as far as looking for their backend: the generated text parsed and passed Triton's checks."""
    source = tmp_path / "models" / "resemblyzer-ge2e" / "1"
    source.mkdir(parents=True)
    shutil.copy(models_dir / "resemblyzer-ge2e" / "1" / "card.json", source)
    (source / "model.onnx").symlink_to(models_dir / "resemblyzer-ge2e" / "1" / "model.onnx")
    (source / "model.plan").write_bytes(b"not a plan")
    write_triton_repository(tmp_path / "models", tmp_path / "repo", variant=variant, **options)
    server = LocalTriton(tmp_path / "repo", work=tmp_path / "work").start(wait=None)
    try:
        assert server.proc.wait(60) != 0
    finally:
        server.stop()
    log = server.log_path.read_text()
    backend = "onnxruntime" if variant == "onnxruntime" else "tensorrt"
    assert f"unable to find backend library for backend '{backend}'" in log, server.log_tail()
    assert "failed to read text proto" not in log
