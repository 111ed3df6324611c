"""`toitsu redteam speaker --target`: the black-box attack against a real `toitsu serve` (GE2E,
cosine scoring), counted against the gateway's own audit trail.

The easy case is a probe just below τ: a genuine utterance of the target blended with an
impostor's, the blend picked by the test's own Verify calls. A large ε pushes it over τ within a
few dozen queries; at ε = 1e-5 it stays rejected for the whole budget.
"""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
import pytest
import soundfile as sf

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from tests.conftest import GE2E_MODEL, REPO
from tests.integration.test_model_jobs_restart import free_port
from tests.integration.test_serve_end_to_end import Server, cli

pytestmark = pytest.mark.integration
BIG, TINY, BUDGET = 0.05, 1e-5, 100


def _verify(stub, speaker: str, x: np.ndarray) -> tuple[float, float]:
    pcm = common_pb2.RawPcm(data=x.astype("<f4").tobytes(), sample_rate=16000, channels=1, format=3)
    reply = stub.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id=speaker, audio=common_pb2.Audio(pcm=pcm)))
    return reply.decision.score, reply.decision.threshold


def _near_miss(stub, genuine: np.ndarray, impostor: np.ndarray) -> np.ndarray:
    """α·genuine + (1 − α)·impostor with its score in [τ − 0.008, τ − 0.002] (bisection on α)."""
    lo, hi = 0.0, 1.0
    for _ in range(14):
        alpha = (lo + hi) / 2
        mix = (alpha * genuine + (1 - alpha) * impostor).astype(np.float32)
        score, tau = _verify(stub, "v0", mix)
        if tau - 0.008 <= score <= tau - 0.002:
            return mix
        lo, hi = (alpha, hi) if score < tau - 0.008 else (lo, alpha)
    pytest.fail("no blend of the two voices scores just below τ")


def _last_audit_id(target: str) -> int:
    events = cli(target, "audit", "--limit", "1")["events"]
    return int(events[0]["id"]) if events else 0


def _verify_events_since(target: str, after: int) -> list[dict]:
    events = cli(target, "audit", "--method", "SpeakerService/Verify", "--limit", "10000")["events"]
    return [e for e in events if int(e["id"]) > after]


def _redteam(target: str, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "toitsu", "redteam", "speaker", "--model", GE2E_MODEL, "--target", target, *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_blackbox_attack_through_a_gateway(models_dir, voices, tmp_path):
    sets = (f"speaker.model={GE2E_MODEL}", "speaker.scoring=cosine")
    server = Server(models_dir, tmp_path / "var", tmp_path / "server.log", sets)
    try:
        cli(server.target, "speaker", "enroll", "v0", str(voices.path(0, 0)), str(voices.path(0, 1)))
        stub = speaker_pb2_grpc.SpeakerServiceStub(grpc.insecure_channel(server.target))
        genuine, _ = sf.read(str(voices.path(0, 2)), dtype="float32")
        impostor, _ = sf.read(str(voices.path(1, 2)), dtype="float32")
        n = min(genuine.size, impostor.size, 32000)
        probe = tmp_path / "probe.wav"
        sf.write(probe, _near_miss(stub, genuine[:n], impostor[:n]), 16000, subtype="FLOAT")  # exact floats

        before = _last_audit_id(server.target)
        out = tmp_path / "report"
        run = _redteam(
            server.target,
            "--trial",
            f"v0={probe}",
            "--eps",
            f"{BIG},{TINY}",
            "--queries",
            str(BUDGET),
            "--out",
            str(out),
        )
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads((out / "report.json").read_text())
        assert (out / "success-vs-queries.png").stat().st_size > 0
        made = _verify_events_since(server.target, before)
    finally:
        server.stop()

    # Every Verify the gateway audited during the run is one query the report counted, and back.
    trials = {t["eps"]: t for t in report["per_trial"]}
    assert len(made) == report["queries_total"] == sum(t["queries"] for t in trials.values())
    assert all(e["code"] == "OK" and e["identities"] == ["v0"] for e in made)
    for eps, t in trials.items():
        assert t["max_abs_delta"] <= eps and t["max_abs_sample"] <= 1.0
        assert not t["initially_accepted"] and t["initial_score"] < t["threshold"]
    big, tiny = trials[BIG], trials[TINY]
    assert big["queries"] == (big["queries_to_success"] or BUDGET)  # a success stops the attack at once
    assert not tiny["success"] and tiny["queries"] == BUDGET and tiny["queries_to_success"] is None
    (row_tiny,) = [r for r in report["results"] if r["eps"] == TINY]
    assert row_tiny["successes"] == 0 and row_tiny["queries_to_success_mean"] is None
    assert report["model"] == GE2E_MODEL and report["scoring"] == "cosine"


def test_an_unreachable_gateway_or_another_model_exits_1_writing_nothing(models_dir, voices, tmp_path):
    out = tmp_path / "report"
    trial = f"v0={voices.path(1, 2)}"
    dead = _redteam(f"127.0.0.1:{free_port()}", "--trial", trial, "--eps", "0.01", "--queries", "5", "--out", str(out))
    assert dead.returncode == 1 and "UNAVAILABLE" in dead.stderr, dead.stderr
    bad = _redteam("127.0.0.1:1", "--trial", "v0", "--out", str(out))
    assert bad.returncode == 1 and "SPEAKER_ID=FILE" in bad.stderr
    server = Server(models_dir, tmp_path / "var", tmp_path / "server.log")  # the default model: CAM++
    try:
        cli(server.target, "speaker", "enroll", "v0", str(voices.path(0, 0)))
        other = _redteam(server.target, "--trial", trial, "--eps", "0.01", "--queries", "5", "--out", str(out))
    finally:
        server.stop()
    assert other.returncode == 1 and f"not {GE2E_MODEL}" in other.stderr, other.stderr
    assert not out.exists() and not any(tmp_path.glob(".report*"))
