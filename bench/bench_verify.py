"""Verify latency and gateway throughput against raw ONNX Runtime, measured in one run.

1. Generated speech: 16 clips of exactly 3.0 s (espeak-ng voices) as WAV bytes.
2. ``toitsu serve`` in a subprocess (fresh gallery, default model pack), one speaker enrolled.
3. Verify latency p50/p99 at concurrency 1 and 8 (gRPC clients in this process), and the
   gateway's throughput at concurrency 8 (requests/s).
4. Baseline: raw ONNX Runtime on the same model and the same clips, batch 8, default threads
   (clips/s), measured while the server idles. Ratio = gateway / raw.
5. The served pipeline in this process (decode → resample → VAD → model, batch 1, one ORT
   thread): median wall ms per clip, issue 12 item 5's second figure (target <= 40 ms).

The gateway does more per request than the baseline (decode, VAD, gallery scoring, gRPC), and on
a 2-core machine the load-generating clients share the cores with it; both are in the ratio.

    .venv/bin/python bench/bench_verify.py --models models            # JSON in bench/results/verify.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc  # noqa: E402

CLIP_SECONDS = 3.0


def main() -> None:
    args = _parse()
    clips = _clips(args.clips)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as var:
        server, target = _start_server(args.models, Path(var))
        try:
            stub = speaker_pb2_grpc.SpeakerServiceStub(grpc.insecure_channel(target))
            stub.Enroll(
                speaker_pb2.EnrollSpeakerRequest(speaker_id="bench", audio=[_audio(c) for c in clips[:2]]), timeout=60
            )
            _verify_many(stub, clips, 1, 16)  # warm-up
            c1 = _verify_many(stub, clips, 1, args.requests)
            c8 = _verify_many(stub, clips, 8, args.requests)
            raw = _raw_onnxruntime(args.models / args.speaker_model, clips, args.requests)
        finally:
            server.terminate()
            server.wait(30)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clip_seconds": CLIP_SECONDS,
        "concurrency_1": c1,
        "concurrency_8": c8,
        "raw_onnxruntime_batch8": raw,
        "throughput_ratio": c8["throughput_rps"] / raw["throughput_cps"],
        "pipeline_batch1_1thread_ms": _pipeline_ms(args.models, args.speaker_model, clips),
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"verify, 3 s clips     p50 {c1['p50_ms']:7.1f} ms   p99 {c1['p99_ms']:7.1f} ms   (concurrency 1)")
    print(f"                      p50 {c8['p50_ms']:7.1f} ms   p99 {c8['p99_ms']:7.1f} ms   (concurrency 8)")
    print(f"gateway throughput    {c8['throughput_rps']:7.1f} verifications/s (concurrency 8)")
    print(f"raw ONNX Runtime      {raw['throughput_cps']:7.1f} clips/s (batch 8)")
    print(f"ratio                 {result['throughput_ratio']:.2f}   (target >= 0.8)")
    print(
        f"served pipeline       {result['pipeline_batch1_1thread_ms']:7.1f} ms/clip (batch 1, 1 thread; target <= 40)"
    )
    print(f"load average          {result['load_average'][0]:.2f}\nwrote {args.out}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--work", type=Path, default=REPO / "build")
    parser.add_argument("--speaker-model", default="campplus-zh-en", help="the served default; raw ORT runs it too")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "verify.json")
    return parser.parse_args()


def _clips(count: int) -> list[bytes]:
    import io

    import soundfile as sf

    from training.data.synthetic_speech import enumerate_speakers, synthesize_utterance

    n, clips = int(CLIP_SECONDS * 16000), []
    for i, spec in enumerate(enumerate_speakers(count, seed=5, start=4000)):
        rng = np.random.default_rng(i)
        x = np.zeros(0)
        while len(x) < n:
            x = np.concatenate([x, synthesize_utterance(spec, rng)[0]])
        buf = io.BytesIO()
        sf.write(buf, x[:n].astype(np.float32), 16000, format="WAV", subtype="PCM_16")
        clips.append(buf.getvalue())
    return clips


def _audio(clip: bytes) -> common_pb2.Audio:
    return common_pb2.Audio(encoded=clip)


def _start_server(models: Path, var: Path, *settings: str) -> tuple[subprocess.Popen, str]:
    """``toitsu serve`` on a free port, healthy; ``settings`` are ``--set section.key=value`` items."""
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
            str(models),
            "--var",
            str(var),
            "--log-level",
            "WARNING",
            *(arg for setting in settings for arg in ("--set", setting)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None  # stdout=PIPE
    target = proc.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
    subprocess.run(
        [sys.executable, "-m", "toitsu", "health", "--wait", "60", "--target", target],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return proc, target


def _verify_many(stub, clips: list[bytes], concurrency: int, total: int) -> dict:
    requests = [speaker_pb2.VerifySpeakerRequest(speaker_id="bench", audio=_audio(c)) for c in clips]
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        for n in range(w, total, concurrency):
            started = time.perf_counter()
            stub.Verify(requests[n % len(requests)], timeout=60)
            with lock:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": total,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "throughput_rps": total / wall,
    }


def _pipeline_ms(models: Path, name: str, clips: list[bytes]) -> float:
    """Median wall ms per clip of decode → resample → VAD → model (batch 1, one ORT thread each)."""
    from contracts.card import load_card
    from serving.audio.decode import decode_encoded
    from serving.audio.pipeline import AudioPipeline
    from serving.audio.vad import SileroVad
    from serving.embedders import AudioEmbedder
    from serving.inference.onnxruntime_backend import OnnxRuntimeBackend
    from serving.models.repository import ModelVersion

    model = ModelVersion(load_card(models / name / "1"), models / name / "1")
    vad = SileroVad(models / "silero-vad" / "1" / "model.onnx", threads=1)
    backend = OnnxRuntimeBackend(intra_op_threads=1)
    embedder = AudioEmbedder(model, backend, AudioPipeline(vad, model.card.sample_rate or 16000))
    backend.load(embedder.key, model)
    embedder.embed(decode_encoded(clips[0]))  # warm-up
    times = []
    for _ in range(3):
        for clip in clips:
            started = time.perf_counter()
            embedder.embed(decode_encoded(clip))
            times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def _raw_onnxruntime(models: Path, clips: list[bytes], total: int) -> dict:
    import io

    import onnxruntime as ort
    import soundfile as sf

    session = ort.InferenceSession(str(models / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    waves = np.stack([sf.read(io.BytesIO(c), dtype="float32")[0] for c in clips])
    batches = [waves[i : i + 8] for i in range(0, len(waves), 8)]
    for batch in batches:  # warm-up
        session.run(None, {"waveform": batch, "lengths": np.full(len(batch), batch.shape[1], np.int64)})
    done, started = 0, time.perf_counter()
    while done < total:
        batch = batches[(done // 8) % len(batches)]
        session.run(None, {"waveform": batch, "lengths": np.full(len(batch), batch.shape[1], np.int64)})
        done += len(batch)
    return {"batch": 8, "clips": done, "throughput_cps": done / (time.perf_counter() - started)}


if __name__ == "__main__":
    main()
