"""Crash safety: SIGKILL a process in the middle of a stream of enrollments and deletes, reopen,
and check that every acknowledged change survived, nothing is half-written, and the index agrees
with the store."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from serving.gallery import Gallery, GalleryConfig
from serving.gallery.store import open_store
from tests.serving.gallery.conftest import DIM, MODEL

REPO = Path(__file__).resolve().parents[3]
CHILD = textwrap.dedent(f"""
    import json
    import sys
    from pathlib import Path
    import numpy as np
    from serving.gallery import EnrollMode, Gallery, GalleryConfig, Media, ModelBinding

    root, start, store = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    model = ModelBinding({MODEL.name!r}, {MODEL.version})
    gallery = Gallery.open(root, modality="speaker", dim={DIM}, model=model,
                           config=GalleryConfig(snapshot_every=40, snapshot_fraction=0.0, **store))
    rng = np.random.default_rng(start)
    live = [info.identity for info in gallery.list(page_size=10_000)[0]]
    print("ready", flush=True)
    for i in range(start, start + 100_000):
        ops = [("enroll", f"id{{i}}")]
        if live and i % 3 == 0:
            ops.append(("append", live[int(rng.integers(len(live)))]))
        if len(live) > 5 and i % 4 == 0:
            ops.append(("delete", live.pop(int(rng.integers(len(live))))))
        for op, name in ops:
            print("begin", op, name, flush=True)
            if op == "delete":
                gallery.delete(name)
            else:
                mode = EnrollMode.CREATE if op == "enroll" else EnrollMode.APPEND
                gallery.enroll(name, rng.standard_normal((2, {DIM})), model=model, mode=mode,
                               media=[Media(rng.bytes(3000), "wav")])
            print("ack", op, name, flush=True)
        live.append(f"id{{i}}")
""")


Event = tuple[str, str, str]


def _run_until_killed(root: Path, start: int, acks: int, store: dict[str, str]) -> tuple[list[Event], list[Event]]:
    """Start the child, read its log until ``acks`` acknowledgements, SIGKILL it.

    Returns (the log read before the kill, the log the child wrote after that but before it
    died). The second part matters: the child runs on while the parent decides to kill it, and a
    change it made then (a delete of an id acknowledged earlier, say) may have committed.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(start), json.dumps(store)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events: list[Event] = []
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        while sum(e[0] == "ack" for e in events) < acks:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            events.append(tuple(line.split()))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    late = [tuple(line.split()) for line in child.stdout.read().splitlines() if line.strip()]
    return events, [e for e in late if len(e) == 3]


def _expected(runs: list[tuple[list[Event], list[Event]]]) -> tuple[set[str], set[str], set[str]]:
    """(acknowledged present, acknowledged deleted, ids with a change in flight when a run was killed).

    In flight: the change begun and not acknowledged when the parent stopped reading, and every
    change the child logged after that (it may or may not have committed before the SIGKILL).
    """
    present, deleted, in_flight = set(), set(), set()
    for events, late in runs:
        in_flight |= {name for _, _, name in late}
        pending = None
        for kind, op, name in events:
            if kind == "begin":
                pending = name
                continue
            pending = None
            (deleted if op == "delete" else present).add(name)
            (present if op == "delete" else deleted).discard(name)
        in_flight |= {pending} - {None}
    return present, deleted, in_flight


def _check_store(root: Path, config: GalleryConfig) -> set[str]:
    """No half-written identity: each has one template averaging all its samples, and media; no orphans."""
    store = open_store(root, config)
    with contextlib.closing(store), store.reader() as conn:
        names = {}
        for row_id, name, n, blob in conn.execute(
            "SELECT i.id, i.external_id, t.num_samples, t.vector "
            "FROM identities i LEFT JOIN templates t ON t.identity_id = i.id"
        ):
            assert blob is not None, f"{name} has no template"
            samples = np.frombuffer(
                b"".join(r[0] for r in conn.execute("SELECT vector FROM samples WHERE identity_id = ?", (row_id,))),
                "<f4",
            ).reshape(-1, DIM)
            assert len(samples) == n and n >= 2, f"{name}: {len(samples)} samples, template says {n}"
            mean = samples.mean(axis=0)
            np.testing.assert_allclose(np.frombuffer(blob, "<f4"), mean / np.linalg.norm(mean), atol=1e-5)
            assert conn.execute("SELECT COUNT(*) FROM media WHERE identity_id = ?", (row_id,)).fetchone()[0] >= 1
            names[row_id] = name
        for table in ("templates", "samples", "media"):
            orphans = conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE identity_id NOT IN (SELECT id FROM identities)"
            ).fetchone()[0]
            assert orphans == 0, f"{orphans} orphan rows in {table}"
    return set(names.values())


def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path, store_config):
    root = tmp_path / "g"
    runs = [
        _run_until_killed(root, 0, acks=150, store=store_config),
        _run_until_killed(root, 10_000, acks=80, store=store_config),
    ]  # the second run recovers from the first crash
    present, deleted, in_flight = _expected(runs)
    assert len(present) > 100 and deleted

    config = GalleryConfig(background=False, **store_config)
    stored = _check_store(root, config)
    assert present - in_flight <= stored  # an unacknowledged change may or may not have committed
    assert not (deleted - in_flight) & stored
    gallery = Gallery.open(root, modality="speaker", dim=DIM, model=MODEL, config=config)
    try:
        report = gallery.verify_consistency()
        assert report.ok, report
        assert report.store_count == len(stored) == len(gallery)
        for name in sorted(present - in_flight)[:20]:
            assert gallery.search(gallery.template(name), 1, model=MODEL)[0].identity == name
    finally:
        gallery.close()
