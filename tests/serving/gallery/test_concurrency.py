"""Many threads searching while another thread enrolls, replaces and deletes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serving.gallery import EnrollMode
from tests.serving.gallery.conftest import MODEL, unit


@pytest.mark.parametrize(
    "kind, stable_count, config",
    [
        ("flat", 600, {}),
        ("pq-rerank", 1200, {"flat_max": 1000, "compact_ratio": 0.05}),
    ],
)
def test_searches_during_writes(open_gallery, rng, kind, stable_count, config):
    gallery = open_gallery(background=True, snapshot_every=50, **config)
    stable = unit(rng, stable_count)
    gallery.enroll_many(((f"s{i}", v) for i, v in enumerate(stable)), model=MODEL)
    assert gallery.wait_idle(60) and gallery.index_info().kind == kind
    stop, errors, searches = threading.Event(), [], [0]

    def search(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                i = int(r.integers(stable_count))
                matches = gallery.search(stable[i], 5, model=MODEL)
                assert matches[0].identity == f"s{i}" and matches[0].score == pytest.approx(1.0, abs=1e-5)
                assert len(matches) == 5 and len({m.identity for m in matches}) == 5
                scores = [m.score for m in matches]
                assert scores == sorted(scores, reverse=True)
                assert gallery.score(f"s{i}", stable[i], model=MODEL) == pytest.approx(1.0, abs=1e-5)
                searches[0] += 1
        except Exception as exc:  # surfaced by the main thread
            errors.append(exc)

    def write() -> None:
        r = np.random.default_rng(99)
        churn: list[str] = []
        try:
            for j in range(240):
                vector = unit(r, 1)
                gallery.enroll(f"c{j}", vector, model=MODEL)
                churn.append(f"c{j}")
                assert gallery.search(vector[0], 1, model=MODEL)[0].identity == f"c{j}"  # read your write
                if j % 3 == 0:
                    gallery.enroll(churn[int(r.integers(len(churn)))], unit(r, 1), model=MODEL, mode=EnrollMode.REPLACE)
                if j % 2 == 0:
                    gallery.delete(churn.pop(int(r.integers(len(churn)))))
        except Exception as exc:
            errors.append(exc)

    searchers = [threading.Thread(target=search, args=(s,)) for s in range(6)]
    writer = threading.Thread(target=write)
    for t in [*searchers, writer]:
        t.start()
    writer.join(120)
    stop.set()
    for t in searchers:
        t.join(30)
    assert not errors, errors[:3]
    assert searches[0] > 100
    assert gallery.wait_idle(60) and gallery.index_info().last_error is None
    report = gallery.verify_consistency()
    assert report.ok and report.store_count == stable_count + 120, report
