"""Identification latency and recall of ``Gallery.search`` on large synthetic galleries.

For each size: bulk-load that many random unit 256-d templates through ``Gallery.enroll_many``
(default config, so the index kind is whatever the gallery picks by size), then time
``Gallery.search(probe, k=5)`` one query at a time and compare its top-1 with exact brute force
(``faiss.IndexFlatIP`` on the same vectors, one OpenMP thread — also the latency baseline).

Probes are realistic identification probes: a random gallery template plus noise, at a cosine to
their source drawn uniformly from [--cos-min, --cos-max] (default 0.6-0.8), not random vectors.
Isotropic random templates are the hard case for approximate search: there is no cluster
structure to exploit.

    .venv/bin/python bench/bench_identify.py                      # 100k and 1M (several minutes)
    .venv/bin/python bench/bench_identify.py --sizes 20000 --queries 200   # quick
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from serving.gallery import Gallery, GalleryConfig, ModelBinding

MODEL = ModelBinding("bench-model", 1)


def main() -> None:
    args = _parse()
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict[str, Any] = {"machine": _machine(), "args": settings, "runs": []}
    for i, size in enumerate(args.sizes):
        run = bench_size(size, args)
        results["runs"].append(run)
        _print_row(run, header=i == 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out}")


def bench_size(size: int, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    vectors = _templates(size, args.dim, rng)
    folder = Path(tempfile.mkdtemp(prefix="bench-gallery-", dir=args.workdir))
    try:
        started = time.perf_counter()
        gallery = Gallery.open(folder, modality="speaker", dim=args.dim, model=MODEL, config=GalleryConfig())
        gallery.enroll_many(((f"id{i:08d}", vectors[i]) for i in range(size)), model=MODEL, batch_size=args.batch)
        gallery.wait_idle()
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        gallery.close()
        gallery = Gallery.open(folder, modality="speaker", dim=args.dim, model=MODEL, config=GalleryConfig())
        reopen_s = time.perf_counter() - started
        index = gallery.index_info()
        probes, sources = _probes(vectors, args.queries, args.cos_min, args.cos_max, rng)
        exact_ids, base_times = _baseline(vectors, probes, args.k)
        got: list[int] = []
        times: list[float] = []
        for probe in probes[: args.warmup]:
            gallery.search(probe, args.k, model=MODEL)
        for probe in probes:
            t0 = time.perf_counter()
            matches = gallery.search(probe, args.k, model=MODEL)
            times.append(time.perf_counter() - t0)
            got.append(int(matches[0].identity[2:]))
        gallery.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    top1 = np.asarray(got)
    p50, p99 = np.percentile(times, [50, 99]) * 1e3
    b50, b99 = np.percentile(base_times, [50, 99]) * 1e3
    return {
        "size": size,
        "dim": args.dim,
        "k": args.k,
        "index_kind": index.kind,
        "index_params": index.params,
        "load_s": round(load_s, 1),
        "reopen_s": round(reopen_s, 2),
        "queries": len(probes),
        "search_p50_ms": round(p50, 3),
        "search_p99_ms": round(p99, 3),
        "exact_p50_ms": round(b50, 3),
        "exact_p99_ms": round(b99, 3),
        "p50_ratio_vs_exact": round(p50 / b50, 3),
        "recall_at_1_vs_exact": float((top1 == exact_ids).mean()),
        "top1_is_source": float((top1 == sources).mean()),
        "exact_top1_is_source": float((exact_ids == sources).mean()),
    }


def _templates(size: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    vectors = np.empty((size, dim), np.float32)
    for start in range(0, size, 100_000):
        part = rng.standard_normal((min(100_000, size - start), dim), dtype=np.float32)
        vectors[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return vectors


def _probes(
    vectors: np.ndarray, n: int, cos_min: float, cos_max: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies of random templates at a cosine in [cos_min, cos_max] to their source."""
    sources = rng.choice(len(vectors), n, replace=False)
    src = vectors[sources]
    noise = rng.standard_normal(src.shape).astype(np.float32)
    noise -= (noise * src).sum(axis=1, keepdims=True) * src
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cos = rng.uniform(cos_min, cos_max, size=(n, 1)).astype(np.float32)
    probes = cos * src + np.sqrt(1 - cos**2) * noise
    return np.ascontiguousarray(probes / np.linalg.norm(probes, axis=1, keepdims=True), np.float32), sources


def _baseline(vectors: np.ndarray, probes: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """Exact top-1 ids, and single-query latency of exact brute force (IndexFlatIP, one thread)."""
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        times, top1 = [], []
        for probe in probes:
            t0 = time.perf_counter()
            _, ids = flat.search(probe[None, :], k)
            times.append(time.perf_counter() - t0)
            top1.append(ids[0, 0])
    finally:
        faiss.omp_set_num_threads(previous)
    return np.asarray(top1), times


def _print_row(run: dict, *, header: bool) -> None:
    if header:
        print(
            f"{'size':>9} {'index':>10} {'load s':>7} {'reopen s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'exact p50':>9} {'ratio':>6} {'recall@1':>8}"
        )
    print(
        f"{run['size']:>9} {run['index_kind']:>10} {run['load_s']:>7} {run['reopen_s']:>8} "
        f"{run['search_p50_ms']:>7} {run['search_p99_ms']:>7} {run['exact_p50_ms']:>9} "
        f"{run['p50_ratio_vs_exact']:>6} {run['recall_at_1_vs_exact']:>8.4f}",
        flush=True,
    )


def _machine() -> dict:
    import os

    return {
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--cos-min", type=float, default=0.6)
    p.add_argument("--cos-max", type=float, default=0.8)
    p.add_argument("--batch", type=int, default=20_000, help="identities per enroll_many transaction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="where the temporary galleries go")
    p.add_argument("--out", type=Path, default=Path("bench/results/identify.json"))
    return p.parse_args()


if __name__ == "__main__":
    main()
