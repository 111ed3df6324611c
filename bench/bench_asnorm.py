"""The cost of AS-norm per verification, next to raw cosine scoring, in the same run.

A verification with ``[speaker] scoring = "as-norm"`` does what ``SpeakerServicer.Verify`` does
after the embedding: the raw cosine, then ``Scorer.rescore`` (top-N statistics of the template
and of the probe against the cohort). The cohort is random unit rows (the cost does not depend on
the values). Also timed: Identify's re-ranking of its retrieved candidates (``max(top_k, 10)·2``).
BLAS runs on ``--threads`` threads (1 by default: a gateway serves many requests at once).

    .venv/bin/python bench/bench_asnorm.py                 # 5,000 × 192, top 100
    .venv/bin/python bench/bench_asnorm.py --cohort 300    # the default pack's cohort size
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable


def _per_call(fn: Callable[[], object], repeat: int) -> float:
    """Median over 5 rounds of the mean seconds per call."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        rounds.append((time.perf_counter() - start) / repeat)
    return sorted(rounds)[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=int, default=5000, help="cohort embeddings")
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--top-n", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy loads its BLAS
    import numpy as np

    from serving.scoring import Scorer

    rng = np.random.default_rng(0)

    def units(n: int) -> np.ndarray:
        x = rng.normal(size=(n, args.dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    scorer = Scorer("as-norm", units(args.cohort), args.top_n)
    template, probe, candidates = units(1)[0], units(1)[0], units(20)

    def cosine() -> float:
        return float(template @ probe)

    def as_norm() -> float:
        raw = float(template @ probe)
        return float(scorer.rescore(np.array([raw]), template[None, :], probe)[0])

    def rerank() -> np.ndarray:
        return scorer.rescore(candidates @ probe, candidates, probe)

    raw_s, norm_s = _per_call(cosine, args.repeat * 10), _per_call(as_norm, args.repeat)
    rerank_s = _per_call(rerank, args.repeat // 4)
    result = {
        "cohort": args.cohort,
        "dim": args.dim,
        "top_n": args.top_n,
        "threads": args.threads,
        "cosine_us": round(raw_s * 1e6, 2),
        "as_norm_us": round(norm_s * 1e6, 1),
        "as_norm_over_cosine": round(norm_s / raw_s, 1),
        "identify_rerank_20_us": round(rerank_s * 1e6, 1),
        "goal_1ms_met": norm_s <= 1e-3,
    }
    print(json.dumps(result, indent=2))
    return 0 if norm_s <= 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
