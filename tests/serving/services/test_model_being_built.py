"""A model still being built (``make serve`` builds the sound model in the background): its service
is NOT_SERVING and answers UNAVAILABLE saying so while the others serve, and it turns SERVING by
itself once the model is published. A build that stopped is a final error naming its log."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.v1 import common_pb2, sound_pb2, sound_pb2_grpc
from serving.config import load_config
from serving.loader import BuildLock, build_status
from serving.server import Gateway
from tests.conftest import wav_bytes

SOUND = "toitsu-sound-formula"
SPEAKER_SERVICE, SOUND_SERVICE = "toitsu.v1.SpeakerService", "toitsu.v1.SoundService"


@pytest.fixture
def repo(models_dir, tmp_path) -> Path:
    """The default pack without its sound model (links to the real version folders)."""
    if not (models_dir / SOUND / "1" / "card.json").is_file():
        pytest.fail(f"{models_dir / SOUND} is missing: run `make models`")
    root = tmp_path / "models"
    root.mkdir()
    for model in models_dir.iterdir():
        if model.is_dir() and not model.name.startswith(".") and model.name != SOUND:
            (root / model.name).symlink_to(model.resolve(), target_is_directory=True)
    return root


def _gateway(repo: Path, var: Path) -> Gateway:
    config = load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": "0",
            "face.enabled": "false",
            "server.load_retry_seconds": "0.1",
            "paths.models": str(repo),
            "paths.var": str(var),
        }
    )
    return Gateway(config)


def _health(channel: grpc.Channel, service: str = "") -> str:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _publish(source: Path, repo: Path) -> None:
    """As export does: assemble in a hidden staging folder, then one rename."""
    (repo / SOUND).mkdir()
    shutil.copytree(source / SOUND / "1", repo / SOUND / ".staging-1")
    (repo / SOUND / ".staging-1").rename(repo / SOUND / "1")


def test_the_sound_service_waits_for_its_model_and_serves_it_once_published(repo, models_dir, tmp_path):
    lock = BuildLock(repo, "sound", [SOUND], log="/somewhere/build-sound.log")
    assert lock.acquire(wait=False)
    lock.write("running")
    gateway = _gateway(repo, tmp_path / "var")
    port = gateway.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert _until(lambda: _health(channel, SPEAKER_SERVICE) == "SERVING", 60)
            assert _health(channel, SOUND_SERVICE) == "NOT_SERVING"
            assert _health(channel) == "NOT_SERVING"  # the server as a whole: not every service yet
            sound = sound_pb2_grpc.SoundServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                sound.ListClasses(sound_pb2.ListClassesRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "still being built" in err.value.details() and "/somewhere/build-sound.log" in err.value.details()
            time.sleep(0.5)  # several retries later, still waiting, not failed
            assert _health(channel, SOUND_SERVICE) == "NOT_SERVING" and not gateway._loaded.is_set()

            _publish(models_dir, repo)
            lock.write("published")
            lock.release()
            assert _until(lambda: _health(channel, SOUND_SERVICE) == "SERVING", 30)
            assert gateway.wait_loaded(10) and _health(channel) == "SERVING"
            clip = wav_bytes(0.1 * np.random.default_rng(0).standard_normal(16000 * 2))
            reply = sound.Embed(sound_pb2.EmbedSoundRequest(audio=common_pb2.Audio(encoded=clip)), timeout=30)
            assert reply.embedding.model.name == SOUND and len(reply.embedding.values) > 0
    finally:
        lock.release()
        gateway.stop(grace=0)


def test_a_build_that_stopped_is_a_final_error_naming_its_log(repo, tmp_path):
    lock = BuildLock(repo, "sound", [SOUND], log="/somewhere/build-sound.log")
    assert lock.acquire(wait=False)
    lock.write("failed")
    lock.release()  # as when the build process died: the kernel drops its lock
    gateway = _gateway(repo, tmp_path / "var")
    port = gateway.start()
    try:
        assert not gateway.wait_loaded(60)  # loading finished, with the sound model in error
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert _health(channel, SPEAKER_SERVICE) == "SERVING"
            assert _health(channel, SOUND_SERVICE) == "NOT_SERVING"
            with pytest.raises(grpc.RpcError) as err:
                sound_pb2_grpc.SoundServiceStub(channel).ListClasses(sound_pb2.ListClassesRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "stopped before publishing" in err.value.details() and "state failed" in err.value.details()
        assert "/somewhere/build-sound.log" in err.value.details()
    finally:
        gateway.stop(grace=0)


def test_without_a_build_a_missing_model_is_the_usual_final_error(repo, tmp_path):
    gateway = _gateway(repo, tmp_path / "var")
    port = gateway.start()
    try:
        assert not gateway.wait_loaded(60)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as err:
                sound_pb2_grpc.SoundServiceStub(channel).ListClasses(sound_pb2.ListClassesRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "make models" in err.value.details()
        assert "being built" not in err.value.details()
    finally:
        gateway.stop(grace=0)


def test_the_lock_lives_as_long_as_the_process_it_was_handed_to(tmp_path):
    """What `build-defaults --background` relies on: the child's inherited descriptor keeps the
    lock after the parent closes its own, and the kernel drops it when the child exits."""
    lock = BuildLock(tmp_path, "sound", [SOUND], log="x.log")
    assert lock.acquire(wait=False)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, pass_fds=[lock.fd]
    )
    lock.write("running", pid=child.pid)
    lock.release()
    try:
        status = build_status(tmp_path, SOUND)
        assert status is not None and status.running and status.pid == child.pid and status.log == "x.log"
        assert not BuildLock(tmp_path, "sound", [SOUND]).acquire(wait=False)  # a second builder is refused
    finally:
        child.communicate(b"", timeout=10)
    assert not build_status(tmp_path, SOUND).running
    assert build_status(tmp_path, "another-model") is None
    again = BuildLock(tmp_path, "sound", [SOUND])
    assert again.acquire(wait=False)
    again.release()
