"""The approximate indexes the gallery does not use, on the data of ``bench/bench_identify.py``.

DESIGN §3 names IVF or HNSW for large galleries; the gallery uses 4-bit PQ fast-scan with exact
re-ranking instead (README, *Design notes*). This prints the figures behind that choice: recall@1
against exact search (``IndexFlatIP``) and build time of

- IVF-Flat (``IndexIVFFlat``, inner product, ``--nlist`` lists), searched at each ``--nprobe``;
- HNSW (``IndexHNSWFlat``, inner product, M = ``--hnsw-m``), searched at each ``--ef``;

on isotropic unit templates with noisy probes (cosine 0.6-0.8 to their source), the hard case
for approximate search. The gallery's own index on the same data is ``bench/bench_identify.py``'s.
faiss runs on ``--threads`` OpenMP threads (default 1, so build times compare across machines
with other work on them).

    .venv/bin/python bench/ann_alternatives.py --size 100000 --nlist 1024        # a few minutes
    .venv/bin/python bench/ann_alternatives.py --size 1000000 --no-hnsw          # HNSW: > 10 min at 1M
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    args = _parse()
    from bench.bench_identify import _probes, _templates  # the same templates and probes

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    vectors = _templates(args.size, args.dim, rng)
    probes, _ = _probes(vectors, args.queries, args.cos_min, args.cos_max, rng)
    exact = _top1(_built(faiss.IndexFlatIP(args.dim), vectors)[0], probes)
    runs = []
    index, seconds = _built(_ivf(args.dim, args.nlist), vectors, train=True)
    for nprobe in args.nprobe:
        index.nprobe = nprobe
        runs.append(_row("ivf-flat", f"nlist {args.nlist}, nprobe {nprobe}", seconds, index, probes, exact))
    if args.hnsw:
        hnsw, seconds = _built(faiss.IndexHNSWFlat(args.dim, args.hnsw_m, faiss.METRIC_INNER_PRODUCT), vectors)
        for ef in args.ef:
            hnsw.hnsw.efSearch = ef
            runs.append(_row("hnsw", f"M {args.hnsw_m}, efSearch {ef}", seconds, hnsw, probes, exact))
    result = {
        "size": args.size,
        "dim": args.dim,
        "queries": len(probes),
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"load average {os.getloadavg()[0]:.2f}\nwrote {args.out}")


IndexT = TypeVar("IndexT", bound=faiss.Index)


def _ivf(dim: int, nlist: int) -> faiss.IndexIVFFlat:
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    return index


def _built(index: IndexT, vectors: np.ndarray, train: bool = False) -> tuple[IndexT, float]:
    started = time.perf_counter()
    if train:
        index.train(vectors)
    index.add(vectors)
    return index, time.perf_counter() - started


def _top1(index: faiss.Index, probes: np.ndarray) -> np.ndarray:
    return index.search(probes, 1)[1][:, 0]


def _row(kind: str, setting: str, build_s: float, index: faiss.Index, probes: np.ndarray, exact: np.ndarray) -> dict:
    started = time.perf_counter()
    got = _top1(index, probes)
    per_query_ms = (time.perf_counter() - started) / len(probes) * 1e3
    row = {
        "index": kind,
        "setting": setting,
        "build_s": round(build_s, 1),
        "recall_at_1_vs_exact": float((got == exact).mean()),
        "ms_per_query": round(per_query_ms, 3),
    }
    print(
        f"{kind:<9} {setting:<26} build {row['build_s']:7.1f} s   recall@1 {row['recall_at_1_vs_exact']:.3f}   "
        f"{per_query_ms:7.3f} ms/query",
        flush=True,
    )
    return row


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--cos-min", type=float, default=0.6)
    p.add_argument("--cos-max", type=float, default=0.8)
    p.add_argument("--nlist", type=int, default=4096)
    p.add_argument("--nprobe", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64, 128])
    p.add_argument("--hnsw", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128, 256])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ann_alternatives.json")
    return p.parse_args()


if __name__ == "__main__":
    main()
