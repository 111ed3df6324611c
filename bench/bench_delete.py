"""What deletion that leaves nothing costs a Delete: ``Gallery.delete`` with its scrub (WAL checkpoint
with TRUNCATE, index snapshot removed) against the same delete without it, on a flat gallery of
``--size`` 256-d identities (one enrollment before each delete, so the WAL always has something),
deletes back to back and spaced out.

    .venv/bin/python -m bench.bench_delete --size 10000 --deletes 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from serving.gallery import Gallery, GalleryConfig, ModelBinding

MODEL, DIM = ModelBinding("bench", 1), 256


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run(size: int, deletes: int, scrub: bool, spaced: bool) -> dict[str, float]:
    """Delete latencies; ``spaced``: each delete waits until the previous one's background snapshot
    is written (deletes rarer than snapshots), else back to back (each may wait for that snapshot)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        config = GalleryConfig(background=True)  # snapshot_after_delete: a new snapshot after each delete
        gallery = Gallery.open(Path(tmp) / "g", modality="speaker", dim=DIM, model=MODEL, config=config)
        if not scrub:
            gallery._scrub = lambda: None  # type: ignore[method-assign]  # the delete as it was before
        gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(_unit(rng, size))), model=MODEL)
        gallery.snapshot()
        times = []
        for i in range(deletes):
            gallery.enroll(f"new{i}", _unit(rng, 1), model=MODEL)
            if spaced:
                gallery.wait_idle()
            start = time.perf_counter()
            gallery.delete(f"id{i}")
            times.append(time.perf_counter() - start)
        gallery.close()
    ms = sorted(t * 1000 for t in times)
    return {"median_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))], "max_ms": ms[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--deletes", type=int, default=200)
    args = parser.parse_args()
    result = {
        "size": args.size,
        "deletes": args.deletes,
        **{
            f"{'spaced' if spaced else 'back_to_back'}_{'with' if scrub else 'without'}_scrub": run(
                args.size, args.deletes, scrub, spaced
            )
            for spaced in (False, True)
            for scrub in (False, True)
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
