"""`toitsu models build-defaults --background sound`, as `make serve` runs it: returns at once with
the build running in its own process under the part's lock, never starts a second build, and
does nothing when the model is already there. The child here fails fast (its work folder is a
file) so that the whole hand-over is exercised without a real pre-training."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.loader import BuildLock, build_status
from tests.conftest import REPO

pytestmark = pytest.mark.integration
SOUND = "toitsu-sound-formula"


def build_defaults(models: Path, work: Path, log: Path, *extra: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "toitsu",
            "models",
            "build-defaults",
            "--models",
            str(models),
            "--work",
            str(work),
            "--log",
            str(log),
            "--part",
            "sound",
            "--background",
            "sound",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_build_runs_in_its_own_process_under_the_lock(tmp_path):
    models, work, log = tmp_path / "models", tmp_path / "work-is-a-file", tmp_path / "build-sound.log"
    work.write_text("")
    started = time.monotonic()
    out = build_defaults(models, work, log)
    assert time.monotonic() - started < 60  # it did not wait for the build
    found = re.search(r"sound: building in the background \(pid (\d+), log (\S+)\)", out)
    assert found, out
    pid = int(found.group(1))
    status = build_status(models, SOUND)
    assert status is not None and status.pid == pid and status.log == str(log.resolve())
    deadline = time.monotonic() + 120
    while build_status(models, SOUND).running and time.monotonic() < deadline:
        time.sleep(0.2)
    status = build_status(models, SOUND)
    assert not status.running and status.state == "failed"
    assert "NotADirectoryError" in log.read_text()  # its output went to the log


def test_a_second_build_is_not_started_while_one_runs(tmp_path):
    models, log = tmp_path / "models", tmp_path / "build-sound.log"
    lock = BuildLock(models, "sound", [SOUND], log="/elsewhere.log")
    assert lock.acquire(wait=False)
    lock.write("running")
    try:
        out = build_defaults(models, tmp_path / "work", log)
    finally:
        lock.release()
    assert f"sound: already being built by pid {os.getpid()} (log: /elsewhere.log)" in out
    assert not log.exists()


def test_nothing_is_started_when_the_model_is_there(models_dir, tmp_path):
    models, log = tmp_path / "models", tmp_path / "build-sound.log"
    models.mkdir()
    (models / SOUND).symlink_to((models_dir / SOUND).resolve(), target_is_directory=True)
    out = build_defaults(models, tmp_path / "work", log)
    assert out.strip() == f"sound: already built ({SOUND})"
    assert not log.exists() and build_status(models, SOUND) is None


def test_a_foreground_build_waits_for_the_running_one(tmp_path):
    """`make models` / `make test` after `make serve`: wait for the background build, not race it."""
    models, work = tmp_path / "models", tmp_path / "work-is-a-file"
    work.write_text("")
    lock = BuildLock(models, "sound", [SOUND], log="/elsewhere.log")
    assert lock.acquire(wait=False)
    lock.write("running")
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toitsu",
            "models",
            "build-defaults",
            "--models",
            str(models),
            "--work",
            str(work),
            "--part",
            "sound",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = child.stdout.readline()
        assert first.strip() == f"sound: waiting for the build in pid {os.getpid()} (log: /elsewhere.log)"
        time.sleep(1)
        assert child.poll() is None  # still waiting
        assert build_status(models, SOUND).state == "running"
    finally:
        lock.release()
    _, err = child.communicate(timeout=120)
    assert child.returncode != 0 and "NotADirectoryError" in err  # it went on to build (and failed fast)
    status = build_status(models, SOUND)
    assert not status.running and status.state == "failed" and status.pid == child.pid


def test_an_unknown_part_is_refused_by_name(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "toitsu",
            "models",
            "build-defaults",
            "--models",
            str(tmp_path),
            "--background",
            "sounds",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "unknown part(s) sounds (known: speaker, face, sound)" in result.stderr
    assert not (tmp_path / ".building").exists()
