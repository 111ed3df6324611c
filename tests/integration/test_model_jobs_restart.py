"""A gateway SIGKILLed while a training job runs: its training process dies with it (no orphan
trains on), and the restarted gateway resumes the same job from the run's last checkpoint —
one job, not two, and its event log continues without a gap. The CLI drives it: `toitsu models
train` (a local recipe file, sent as text), `models watch` riding through the restart, then
`models export` and `models list`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from protos.v1 import model_pb2, model_pb2_grpc
from tests.conftest import REPO, SPEAKER_MODEL
from tests.serving.services.test_model_service import tiny_recipe

pytestmark = pytest.mark.integration
STEPS = 150  # long enough that the kill (after step 14) always lands before the end


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(models: Path, var: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    sets = [f"jobs.recipes={REPO / 'recipes'}", f"jobs.workdir={REPO}", "jobs.devices=cpu"]
    sets += ["sound.enabled=false", "face.enabled=false"]
    argv = [sys.executable, "-m", "toitsu", "serve", "--port", str(port), "--metrics-port", "0"]
    argv += ["--models", str(models), "--var", str(var), *(x for s in sets for x in ("--set", s))]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=open(log, "ab"), env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert "listening on" in line, f"server did not start: {line!r}; see {log}"
    assert cli(f"127.0.0.1:{port}", "health", "--wait", "60").returncode == 0, f"not SERVING; see {log}"
    return proc


def cli(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "toitsu", *args, "--target", target, "--json"]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


def job_events(var: Path, job_id: str) -> list[dict]:
    return [json.loads(line) for line in (var / "jobs" / job_id / "events.jsonl").read_text().splitlines()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too: it only waits to be reaped
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_a_sigkilled_gateway_resumes_its_training_job_from_the_last_checkpoint(models_dir, tmp_path):
    var, log, models = tmp_path / "var", tmp_path / "server.log", tmp_path / "models"
    for name in (SPEAKER_MODEL, "silero-vad"):
        shutil.copytree(models_dir / name, models / name)
    recipe = tiny_recipe(tmp_path / "corpus", steps=STEPS, log_every=2, checkpoint_every=10)
    (tmp_path / "tiny.yaml").write_text(recipe)
    port = free_port()
    target = f"127.0.0.1:{port}"
    proc = serve(models, var, log, port)
    started = cli(target, "models", "train", str(tmp_path / "tiny.yaml"))
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["id"]
    # A watcher started now must ride through the restart, re-attaching after the last event it saw.
    watch = [sys.executable, "-m", "toitsu", "models", "watch", job_id, "--target", target, "--json"]
    watcher = subprocess.Popen(watch, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with grpc.insecure_channel(target) as channel:
        stub = model_pb2_grpc.ModelServiceStub(channel)
        for event in stub.WatchJob(model_pb2.WatchJobRequest(job_id=job_id), timeout=300):
            if event.job.step >= 14:  # past the checkpoint at step 10
                break
    pid = next(
        int(e["message"].rsplit("pid ", 1)[1].rstrip(")"))
        for e in job_events(var, job_id)
        if e["message"].startswith("started")
    )
    seen = len(job_events(var, job_id))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the training process outlived its gateway"
    # How far the training really got (its own log; the job's events sample it every poll).
    metrics = (var / "jobs" / job_id / "run" / "metrics.jsonl").read_text().splitlines()
    reached = max(json.loads(line)["step"] for line in metrics)

    proc = serve(models, var, log, port)
    try:
        with grpc.insecure_channel(target) as channel:
            stub = model_pb2_grpc.ModelServiceStub(channel)
            after = list(stub.WatchJob(model_pb2.WatchJobRequest(job_id=job_id, after_sequence=seen), timeout=300))
            jobs = stub.ListJobs(model_pb2.ListJobsRequest(), timeout=10).jobs
        watched, _ = watcher.communicate(timeout=120)
        exported = cli(target, "models", "export", job_id)
        listed = cli(target, "models", "list")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert [j.id for j in jobs] == [job_id]  # resumed, not duplicated
    assert [e.sequence for e in after] == list(range(seen + 1, seen + 1 + len(after)))
    final = after[-1].job
    assert final.state == model_pb2.SUCCEEDED and final.step == STEPS and final.attempts == 2, final.error
    # From the last checkpoint before the kill (every 10 steps), not from step 0; the kill can
    # land several checkpoints after step 14, so the bound is how far the run's own log got.
    restart = next(i for i, e in enumerate(after) if e.message.startswith("the gateway restarted"))
    resumed = [e.job.step for e in after[restart:] if e.message.startswith("step ")]  # not the pre-kill tail
    assert resumed and resumed[0] % 10 == 2 and 12 <= resumed[0] <= reached + 2, (resumed, reached)
    assert f"resumed from the checkpoint at step {resumed[0] - 2}" in [e.message for e in after]
    assert json.loads((var / "jobs" / job_id / "run" / "run.json").read_text())["step"] == STEPS

    sequences = [json.loads(line)["sequence"] for line in watched.splitlines()]
    assert watcher.returncode == 0 and [int(s) for s in sequences] == list(range(1, len(sequences) + 1))
    assert int(sequences[-1]) == after[-1].sequence  # the watcher saw every event, across the restart
    assert exported.returncode == 0, (exported.stdout[-3000:], exported.stderr)
    assert json.loads(exported.stdout.splitlines()[-1])["job"]["model"] == {"name": "tiny-ecapa", "version": "1"}
    listed_models = {(m["model"]["name"], m["modality"]) for m in json.loads(listed.stdout)["models"]}
    assert ("tiny-ecapa", "speaker") in listed_models
