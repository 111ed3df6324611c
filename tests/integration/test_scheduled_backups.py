"""Scheduled backups against a real `toitsu serve` subprocess (issue 19): with no backup the age
gauge on the real /metrics endpoint reads +Inf; with `backups.interval_seconds = 1` and `keep = 2`
backups are taken, verified and pruned to the newest two (a manual one is never pruned) while the
gauge stays fresh; then the store's first bytes are overwritten and the next start reports it
damaged (log, health NOT_SERVING, `toitsu gallery verify`), naming the newest scheduled backup."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from serving.gallery import backup
from tests.conftest import REPO
from tests.integration.test_model_jobs_restart import free_port

pytestmark = pytest.mark.integration
SPEAKER_SERVICE = "toitsu.v1.SpeakerService"


class Gateway:
    """`toitsu serve --config FILE` on free gRPC and metrics ports; not waited on for SERVING (a
    damaged gallery never gets there)."""

    def __init__(self, models: Path, tmp: Path, backups: Path, log: Path, **schedule: float) -> None:
        self.port, self.metrics_port, self.log = free_port(), free_port(), log
        config = tmp / "toitsu.toml"
        keys = "".join(f"{k} = {v}\n" for k, v in schedule.items())
        config.write_text(
            f'[server]\nport = {self.port}\nmetrics_port = {self.metrics_port}\n[paths]\nvar = "{tmp / "var"}"\n'
            f'backups = "{backups}"\n[sound]\nenabled = false\n[face]\nenabled = false\n[backups]\n{keys}'
        )
        argv = [sys.executable, "-m", "toitsu", "serve", "--config", str(config), "--models", str(models)]
        self.proc = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=open(log, "ab"), env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert "listening on" in line, f"server did not start: {line!r}; see {log}"
        self.target = f"127.0.0.1:{self.port}"

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(self.target) as channel:
            request = health_pb2.HealthCheckRequest(service=service)
            return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status

    def metric(self, name: str, modality: str = "speaker") -> float | None:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels.get("modality") == modality:
                    return sample.value
        return None

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0


def cli(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "toitsu", *args, "--target", target, "--json"]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)


def wait_for(what, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := what()) is not None:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


def scheduled(backups: Path) -> list[str]:
    return sorted(p.name for p in backups.glob("scheduled-*") if (p / "speaker" / "manifest.json").is_file())


def test_scheduled_backups_are_pruned_the_gauge_reads_their_age_and_a_damaged_start_names_the_newest(
    models_dir, voices, tmp_path
):
    backups, log = tmp_path / "backups", tmp_path / "server.log"
    gw = Gateway(models_dir, tmp_path, backups, log)  # interval 0: no scheduled backups
    try:
        assert cli(gw.target, "health", "--wait", "60").returncode == 0, f"not SERVING; see {log}"
        for i in range(3):
            files = [str(voices.path(i, 0))]
            assert cli(gw.target, "speaker", "enroll", f"voice{i}", *files).returncode == 0
        age = wait_for(lambda: gw.metric("toitsu_gallery_backup_age_seconds"))
        assert math.isinf(age) and age > 0  # no backup at all
        time.sleep(1.5)
        assert not backups.exists()  # nothing is scheduled with the interval off
    finally:
        gw.stop()

    gw = Gateway(models_dir, tmp_path, backups, log, interval_seconds=1, keep=2)
    seen: set[str] = set()
    try:
        assert cli(gw.target, "health", "--wait", "60").returncode == 0, f"not SERVING; see {log}"
        manual = cli(gw.target, "gallery", "backup", "--modality", "speaker", str(backups / "manual"))
        assert manual.returncode == 0, manual.stderr

        def four_runs() -> bool | None:
            now = scheduled(backups)
            assert len(now) <= 3, now  # keep 2, plus the new one while it is verified
            seen.update(now)
            return True if len(seen) >= 4 else None

        wait_for(four_runs, timeout=60, every=0.1)
        age = gw.metric("toitsu_gallery_backup_age_seconds")
        assert age is not None and 0 <= age < 5, age  # interval 1 s, polled every second
        assert gw.metric("toitsu_gallery_backup_failures_total") in (None, 0.0)
    finally:
        gw.stop()
    present = scheduled(backups)
    assert present == sorted(seen | set(present))[-2:]  # the newest two, the older ones pruned
    assert (backups / "manual" / "speaker" / "manifest.json").is_file()  # a manual backup is never pruned
    assert not list(backups.glob("scheduled-*/.p*"))  # no partial or half-pruned folder left behind
    for name in present:
        manifest = backup.verify(backups / name / "speaker")
        assert manifest["store"]["identities"] == 3  # the three enrolled above

    store = tmp_path / "var" / "galleries" / "speaker" / "store.sqlite3"
    with open(store, "r+b") as f:  # what the issue did to the face gallery
        f.write(b"\0" * 100)
    newest = str(backups / present[-1] / "speaker")
    gw = Gateway(models_dir, tmp_path, backups, log)
    try:
        wait_for(lambda: True if "damaged" in log.read_text() else None)
        assert gw.health(SPEAKER_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert gw.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        assert f"newest usable backup is {newest}" in log.read_text()
        checked = cli(gw.target, "gallery", "verify")
        assert checked.returncode == 1, checked.stderr
        (row,) = json.loads(checked.stdout)["galleries"]
        assert row["newest_backup"] == newest and "damaged" in row["message"] and newest in row["message"]
    finally:
        gw.stop()
