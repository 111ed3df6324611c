"""SIGKILL at each point of an activation — during the re-embed, with writes paused for the final
delta, after COMPLETE, after ACTIVE was replaced — and at a random moment, while another thread
keeps enrolling; then a restart must find exactly one consistent active gallery, serving the
version ACTIVE names, with every acknowledged enrollment in it."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from protos.v1 import common_pb2
from serving.gallery import Media
from serving.gallery import generations as gens
from tests.serving.activation.conftest import PROJECTED, start_gateway

REPO = Path(__file__).resolve().parents[3]
INITIAL = 8

CHILD = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    from pathlib import Path
    from protos.v1 import common_pb2
    from serving.errors import Unavailable
    from serving.gallery import Media
    from tests.serving.activation.conftest import start_gateway

    repo, var, phase, count, target = sys.argv[1:6]
    clips = json.loads(sys.argv[6])
    gw = start_gateway(Path(repo), Path(var), "speaker")

    def writer():
        n = 0
        while True:
            rt = gw.modality("speaker")  # fetched per request, as a servicer does
            data = Path(clips[n % len(clips)]).read_bytes()
            vectors, _ = rt.embed([common_pb2.Audio(encoded=data)], 30)
            print("begin", f"w{n}", flush=True)
            try:
                rt.gallery.enroll(f"w{n}", vectors, model=rt.binding, media=[Media(data, "encoded")])
                print("ack", f"w{n}", flush=True)
                n += 1
            except Unavailable:
                print("refused", f"w{n}", flush=True)
            time.sleep(0.3)  # a steady trickle of enrollments, not a CPU hog that starves the re-embed

    def progress(event):
        print("phase", event.phase, event.done, flush=True)
        if event.phase == phase and event.done >= int(count):
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=writer, daemon=True).start()
    gw.activator.activate("speaker", target, 1, progress=progress)
    print("finished", flush=True)
    threading.Event().wait()  # until killed
""")


def _setup(model_repo: Path, var: Path, clips: list[Path]) -> None:
    gw = start_gateway(model_repo, var, "speaker")
    try:
        rt = gw.modality("speaker")
        for i in range(INITIAL):
            data = [clips[(2 * i + k) % len(clips)].read_bytes() for k in range(2)]
            vectors, _ = rt.embed([common_pb2.Audio(encoded=d) for d in data], 30)
            rt.gallery.enroll(f"id{i}", vectors, model=rt.binding, media=[Media(d, "encoded") for d in data])
    finally:
        gw.stop(grace=0)


def _run(model_repo: Path, var: Path, clips: list[Path], phase: str, count: int) -> list[list[str]]:
    args = [str(model_repo), str(var), phase, str(count), PROJECTED, json.dumps([str(c) for c in clips])]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    events: list[list[str]] = []
    kill_at = None
    try:
        for line in child.stdout:
            events.append(line.split())
            if not events[-1]:
                continue
            if phase == "random" and events[-1][:2] == ["phase", "re-embedding"] and kill_at is None:
                kill_at = time.monotonic() + random.Random(len(str(var))).uniform(0.0, 3.0)
            if kill_at is not None and time.monotonic() >= kill_at:
                break
            if events[-1] == ["finished"]:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        stderr = child.stderr.read()
    if phase != "random":
        assert child.returncode == -signal.SIGKILL and ["finished"] not in events, stderr[-3000:]
        assert any(e[:2] == ["phase", phase] for e in events), stderr[-3000:]
    return events


def _check_one_active(model_repo: Path, var: Path, acked: set[str]) -> str:
    """Restart and check the invariants; returns the model served."""
    root = var / "galleries" / "speaker"
    gw = start_gateway(model_repo, var, "speaker")
    try:
        state = gens.read_state(root)
        rt = gw.modality("speaker")
        if state is None:
            assert gens.folders(root) == [] and rt.binding.name == "resemblyzer-ge2e"
        else:
            assert gens.folders(root) == [state.active.folder]
            assert gens.is_complete(root / state.active.folder)
            assert rt.binding == state.active.binding and rt.gallery.binding == state.active.binding
            assert state.previous is not None and state.previous.folder == gens.LEGACY
        assert rt.gallery.verify_consistency().ok
        listed = {i.identity for i in rt.gallery.list(page_size=1000)[0]}
        assert acked <= listed, f"lost acknowledged: {sorted(acked - listed)}"
        for name in sorted(acked)[:5]:
            assert rt.gallery.search(rt.gallery.template(name), 1, model=rt.binding)[0].identity == name
        return rt.binding.name
    finally:
        gw.stop(grace=0)


@pytest.mark.parametrize(
    "phase, count, served",
    [
        ("re-embedding", 4, "resemblyzer-ge2e"),
        ("final-delta", 0, "resemblyzer-ge2e"),
        ("committing", 0, "resemblyzer-ge2e"),
        ("switched", 0, PROJECTED),
        ("random", 0, None),
    ],
)
def test_sigkill_during_an_activation_leaves_one_consistent_active_gallery(
    model_repo, tmp_path, voices, phase, count, served
):
    clips = [voices.path(i % 6, k) for i in range(6) for k in range(3)]
    var = tmp_path / "var"
    _setup(model_repo, var, clips)
    events = _run(model_repo, var, clips, phase, count)
    acked = {f"id{i}" for i in range(INITIAL)} | {e[1] for e in events if e[:1] == ["ack"]}
    name = _check_one_active(model_repo, var, acked)
    if served is not None:
        assert name == served
    if name == "resemblyzer-ge2e":  # the killed activation left nothing in the way of the next one
        gw = start_gateway(model_repo, var, "speaker")
        try:
            report = gw.activator.activate("speaker", PROJECTED, 1)
            assert report.identities >= len(acked)
        finally:
            gw.stop(grace=0)
        _check_one_active(model_repo, var, acked)
