"""CPU cost of each stage of the gateway's speaker path on 3 s clips, one thread, in one run.

Stages, each timed as process CPU time (``time.process_time``) per clip, median over the clips
and repeats, so that other work on the machine inflates wall time but hardly these figures:

1. decode: WAV bytes → float32 samples (``serving.audio.decode.decode_encoded``);
2. VAD: speech probabilities with the default pack's ``silero-vad`` (the re-expressed graph the
   gateway runs) and with the ``silero-vad`` wheel's own sequence graph on the same audio: the
   baseline of the re-expression. Prints the ratio (wheel ÷ re-expressed) and the largest
   probability difference between the two;
3. model: the speaker model on one clip (batch 1), ONNX Runtime with one intra-op thread.

gRPC and Python per-request overhead is not here: it is what ``bench/bench_verify.py``'s p50 adds
on top of these.

    .venv/bin/python bench/audio_stages.py --models models   # JSON in bench/results/audio_stages.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLIP_SECONDS = 3.0


def main() -> None:
    args = _parse()
    from bench.bench_verify import _clips  # the same generated 3 s clips as the verify benchmark
    from export.importers.silero_vad import source_path
    from serving.audio.decode import decode_encoded
    from serving.audio.vad import SileroVad

    clips = _clips(args.clips)
    waves = [decode_encoded(c).samples for c in clips]
    gateway_vad = SileroVad(args.models / "silero-vad" / "1" / "model.onnx", threads=1)
    wheel_vad = SileroVad(source_path(), threads=1)
    session = _speaker_session(args.models / args.speaker_model / "1" / "model.onnx")

    def embed(x: np.ndarray) -> object:
        return session.run(None, {"waveform": x[None], "lengths": np.array([len(x)], np.int64)})

    stages = {
        "decode": _cpu_ms(lambda i: decode_encoded(clips[i]), len(clips), args.repeats),
        "vad_gateway": _cpu_ms(lambda i: gateway_vad.speech_probabilities(waves[i]), len(clips), args.repeats),
        "vad_wheel": _cpu_ms(lambda i: wheel_vad.speech_probabilities(waves[i]), len(clips), args.repeats),
        "model": _cpu_ms(lambda i: embed(waves[i]), len(clips), args.repeats),
    }
    diff = max(
        float(np.abs(gateway_vad.speech_probabilities(w) - wheel_vad.speech_probabilities(w)).max()) for w in waves
    )
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()},
        "clip_seconds": CLIP_SECONDS,
        "clips": len(clips),
        "repeats": args.repeats,
        "cpu_ms_per_clip": stages,
        "vad_ratio_wheel_over_gateway": stages["vad_wheel"] / stages["vad_gateway"],
        "vad_max_abs_probability_diff": diff,
    }
    for name, ms in stages.items():
        print(f"{name:<12} {ms:7.2f} ms CPU per {CLIP_SECONDS:g} s clip  ({ms / CLIP_SECONDS:.2f} ms per s of audio)")
    print(
        f"VAD: wheel ÷ re-expressed = {result['vad_ratio_wheel_over_gateway']:.2f}; "
        f"probabilities max |Δ| {diff:.1e}; load average {result['machine']['load_average'][0]:.2f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


def _cpu_ms(run: Callable[[int], object], count: int, repeats: int) -> float:
    """Median process CPU milliseconds of ``run(i)`` over ``repeats`` passes of every clip (after one warm-up)."""
    run(0)
    times = []
    for _ in range(repeats):
        for i in range(count):
            started = time.process_time()
            run(i)
            times.append(time.process_time() - started)
    return float(np.median(times) * 1000)


def _speaker_session(path: Path):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--speaker-model", default="resemblyzer-ge2e")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "audio_stages.json")
    return parser.parse_args()


if __name__ == "__main__":
    main()
