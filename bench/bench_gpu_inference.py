"""Speaker-model inference on a GPU: torch (fp32, bf16) against ONNX Runtime's CUDA and TensorRT
execution providers on the same exported graph, in one run (issue 5's GPU check).

The model is the paper-scale ECAPA-TDNN (C=512, 80 mel) exported as ``toitsu export`` does
(waveform + lengths → L2-normalised embedding); batches of 3 s clips. Providers that the
installed onnxruntime lacks are reported as missing, not faked.

    python bench/bench_gpu_inference.py --out $OUT/gpu_inference.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from export.trained_speaker import NormalizedEncoder, export_encoder  # noqa: E402
from training.models import build_speaker_encoder  # noqa: E402

SR = 16000


def timed(fn, repeats: int) -> float:
    fn()
    fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def torch_rate(model, wave, lengths, dtype, repeats: int) -> float:
    def run():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            model(wave, lengths)
        torch.cuda.synchronize()

    return wave.shape[0] / timed(run, repeats)


def ort_rate(path: Path, provider: str, wave: np.ndarray, lengths: np.ndarray, repeats: int) -> dict:
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return {"available": False}
    session = ort.InferenceSession(str(path), providers=[provider, "CPUExecutionProvider"])
    out = session.run(None, {"waveform": wave, "lengths": lengths})[0]
    rate = wave.shape[0] / timed(lambda: session.run(None, {"waveform": wave, "lengths": lengths}), repeats)
    return {"available": True, "clips_per_s": rate, "output": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_inference.json")
    args = parser.parse_args()
    import onnxruntime as ort

    torch.manual_seed(0)
    encoder = build_speaker_encoder("ecapa_tdnn", channels=512, embedding_dim=192, n_mels=80).eval()
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal((args.batch, 3 * SR)) * 0.1).astype(np.float32)
    lengths = np.full(args.batch, 3 * SR, dtype=np.int64)
    result = {
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "tensorrt_importable": importlib.util.find_spec("tensorrt") is not None,
        "batch": args.batch,
        "clip_seconds": 3,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = export_encoder(encoder, Path(tmp) / "model.onnx", SR)
        model = NormalizedEncoder(encoder).cuda().eval()
        w, n = torch.from_numpy(wave).cuda(), torch.from_numpy(lengths).cuda()
        with torch.no_grad():
            reference = model(w, n).cpu().numpy()
        result["torch_fp32_clips_per_s"] = torch_rate(model, w, n, "fp32", args.repeats)
        result["torch_bf16_clips_per_s"] = torch_rate(model, w, n, "bf16", args.repeats)
        for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            entry = ort_rate(path, provider, wave, lengths, args.repeats)
            output = entry.pop("output", None)
            if output is not None:
                entry["max_abs_diff_vs_torch_fp32"] = float(np.abs(output - reference).max())
            result[provider] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
