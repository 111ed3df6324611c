"""Verify through gateway → Triton, as a ratio to the embedded backend measured in the same run.

The same benchmark as ``bench/bench_verify.py`` (16 generated 3.0 s clips, one speaker enrolled,
verify latency at concurrency 1 and 8, throughput at concurrency 8), run twice in turn:

1. baseline: ``toitsu serve`` with the embedded ONNX Runtime backend;
2. ``toitsu serve`` with ``speaker.backend = "triton"`` against a local ``tritonserver``
   (nvidia-pytriton's, python backend, from ``.venv-triton``) serving the python-backend variant
   of the same model repository, generated into a temporary folder.

Ratio = Triton throughput / embedded throughput. Both share the machine with the load-generating
clients; the Triton path adds a gRPC hop, a shared-memory hop into the python-backend stub and
Triton's own scheduling, and runs the model in one Triton instance.

    make triton-env && .venv/bin/python bench/bench_triton.py --models models   # JSON in bench/results/triton.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_verify import _audio, _clips, _verify_many  # noqa: E402

from protos.v1 import speaker_pb2, speaker_pb2_grpc  # noqa: E402


def main() -> None:
    args = _parse()
    clips = _clips(args.clips)
    from export.triton_python_backend import write_triton_repository
    from export.triton_server import LocalTriton

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp:
        root = Path(tmp)
        results["embedded"] = _run(args, clips, root / "var-embedded", [])
        write_triton_repository(args.models, root / "repo", variant="python", instances=args.instances)
        triton = LocalTriton(root / "repo", work=root / "triton")
        started = time.perf_counter()
        triton.start(wait=180)
        load_s = time.perf_counter() - started
        try:
            results["triton"] = _run(
                args,
                clips,
                root / "var-triton",
                ["--set", "speaker.backend=triton", "--set", f"triton.url={triton.url}"],
            )
        finally:
            triton.stop()
    ratio = (
        results["triton"]["concurrency_8"]["throughput_rps"] / results["embedded"]["concurrency_8"]["throughput_rps"]
    )
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clip_seconds": 3.0,
        "triton": {
            "variant": "python",
            "instances": args.instances,
            "server": "nvidia-pytriton 0.7.0 (Triton 2.51)",
            "load_seconds": load_s,
        },
        **results,
        "throughput_ratio": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for name in ("embedded", "triton"):
        c1, c8 = results[name]["concurrency_1"], results[name]["concurrency_8"]
        print(
            f"{name:9} verify p50 {c1['p50_ms']:6.1f} / p99 {c1['p99_ms']:6.1f} ms (c1)   "
            f"p50 {c8['p50_ms']:6.1f} / p99 {c8['p99_ms']:6.1f} ms (c8)   {c8['throughput_rps']:6.1f} verifications/s"
        )
    print(f"gateway→Triton ÷ embedded throughput at concurrency 8: {ratio:.2f}   (Triton ready in {load_s:.1f} s)")
    print(f"wrote {args.out}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--instances", type=int, default=1, help="Triton model instances (python variant)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "triton.json")
    return parser.parse_args()


def _run(args: argparse.Namespace, clips: list[bytes], var: Path, extra: list[str]) -> dict:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toitsu",
            "serve",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--models",
            str(args.models),
            "--var",
            str(var),
            "--log-level",
            "WARNING",
            *extra,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        target = proc.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
        subprocess.run(
            [sys.executable, "-m", "toitsu", "health", "--wait", "120", "--target", target],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with grpc.insecure_channel(target) as channel:
            stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
            stub.Enroll(
                speaker_pb2.EnrollSpeakerRequest(speaker_id="bench", audio=[_audio(c) for c in clips[:2]]), timeout=60
            )
            _verify_many(stub, clips, 1, 16)  # warm-up
            return {
                "concurrency_1": _verify_many(stub, clips, 1, args.requests),
                "concurrency_8": _verify_many(stub, clips, 8, args.requests),
            }
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
