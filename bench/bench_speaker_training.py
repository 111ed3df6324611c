"""Speaker-training throughput in bf16: the full data pipeline against the model alone (issue 6).

Both are measured in one run on the same GPU: (1) model-only — GCL training steps of the
paper-scale encoder (``recipes/speaker/voxceleb2-gcl-ecapa512.yaml``: ECAPA-TDNN C=512, 80
log-mel, 200 pairs of 2 s crops) on one fixed batch already on the device; (2) the pipeline —
the same steps through ``Trainer`` fed by ``PairBatches`` (random crops + on-the-fly
augmentation in DataLoader workers). The ratio says whether the data keeps the GPU fed (target
≥ 0.8). Audio is generated in memory (procedural voices: harmonic source, random formants,
syllable envelope), so no corpus has to travel. Also checks torch (device, fp32) against the
exported ONNX graph (ONNX Runtime, CPU).

    python bench/bench_speaker_training.py --out $OUT/speaker_training.json         # on a GPU
    .venv/bin/python bench/bench_speaker_training.py --device cpu --pairs 8 --steps 4 --warmup 2 \\
        --model-only-steps 3 --speakers 20 --channels 64                            # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.data.audio_store import AudioStore  # noqa: E402
from training.data.augment import Augmenter  # noqa: E402
from training.data.manifest import ManifestRecord  # noqa: E402
from training.data.speaker_batches import PairBatches  # noqa: E402
from training.methods.generalized_contrastive import GeneralizedContrastiveLoss  # noqa: E402
from training.models import build_speaker_encoder  # noqa: E402
from training.recipes.speaker_training import gcl_step, items_in  # noqa: E402
from training.trainer import Trainer, TrainerConfig  # noqa: E402

SR = 16000


def procedural_voice(rng: np.random.Generator, f0: float, formants: np.ndarray, seconds: float) -> np.ndarray:
    """A voiced-speech-like signal: a sawtooth glottal source with vibrato through 3 formant
    resonators, under a syllable-rate envelope (cheap to make: no per-harmonic sines)."""
    from scipy.signal import lfilter

    n = int(seconds * SR)
    t = np.arange(n) / SR
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    source = 2 * ((phase / (2 * np.pi)) % 1.0) - 1 + 0.05 * rng.standard_normal(n)
    x = source
    for f in formants:
        r, theta = 0.97, 2 * np.pi * f / SR
        x = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, None) ** 0.5
    x = x * syllables
    return (0.3 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def corpus(speakers: int, utterances: int, seconds: float, seed: int) -> tuple[list[ManifestRecord], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    records, arrays = [], []
    for s in range(speakers):
        f0, formants = rng.uniform(85, 255), np.sort(rng.uniform([300, 900, 2000], [900, 2300, 3500]))
        for u in range(utterances):
            arrays.append(procedural_voice(rng, f0, formants, seconds))
            records.append(ManifestRecord(Path(f"/gen/s{s:04d}/{u}.wav"), f"s{s:04d}", seconds, "train"))
    return records, arrays


def model_only(modules, device: torch.device, pairs: int, crop: float, steps: int, warmup: int) -> dict:
    batch = {
        "anchor": torch.randn(pairs, int(crop * SR), device=device) * 0.1,
        "positive": torch.randn(pairs, int(crop * SR), device=device) * 0.1,
        "lengths": torch.full((pairs,), int(crop * SR), device=device),
        "speakers": torch.full((pairs,), -1, device=device),
        "labelled": torch.zeros(pairs, dtype=torch.bool, device=device),
    }
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    for m in modules.values():
        m.to(device).train()
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
            started = time.perf_counter()
        with amp:
            out = gcl_step(modules, batch)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
    _sync(device)
    seconds = time.perf_counter() - started
    return {"steps": steps, "seconds": seconds, "pairs_per_s": steps * pairs / seconds}


def pipeline(modules, records, arrays, args, device: torch.device, run_dir: Path) -> dict:
    store = AudioStore.from_arrays(records, arrays, SR)
    total = args.warmup + args.steps
    batches = PairBatches(
        records,
        store,
        pairs_per_batch=args.pairs,
        crop_seconds=args.crop,
        mode="unsupervised",
        augment=Augmenter.from_config({}, SR),
        seed=0,
        steps=total,
    )
    config = TrainerConfig(
        steps=total,
        steps_per_epoch=total,
        amp="auto",
        device="cuda" if device.type == "cuda" else "cpu",
        log_every=args.warmup,
        checkpoint_every=0,
        keep_checkpoints=1,
        num_workers=args.workers,
        tensorboard=False,
        progress=False,
    )
    Trainer(config, modules, gcl_step, batches, run_dir, items_per_batch=items_in).fit()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in lines if r["step"] >= args.warmup)
    last = lines[-1]
    seconds = last["time"]["elapsed_s"] - first["time"]["elapsed_s"]
    steps = last["step"] - first["step"]
    return {"steps": steps, "seconds": seconds, "pairs_per_s": steps * args.pairs / seconds, "workers": args.workers}


def onnx_parity(encoder: torch.nn.Module, device: torch.device) -> dict:
    from export.parity import onnx_session
    from export.trained_speaker import NormalizedEncoder, export_encoder

    encoder = encoder.float().eval().cpu()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_encoder(encoder, Path(tmp) / "model.onnx", SR)
        session = onnx_session(path)
        wave = (np.random.default_rng(1).standard_normal((4, 3 * SR)) * 0.1).astype(np.float32)
        lengths = np.array([3 * SR, 2 * SR, 40000, 17777], dtype=np.int64)
        ort_out = session.run(None, {"waveform": wave, "lengths": lengths})[0]
    model = NormalizedEncoder(encoder).to(device).eval()
    with torch.no_grad():
        torch_out = model(torch.from_numpy(wave).to(device), torch.from_numpy(lengths).to(device)).cpu().numpy()
    return {"max_abs_diff_torch_device_vs_onnxruntime_cpu": float(np.abs(torch_out - ort_out).max())}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--crop", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--model-only-steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--speakers", type=int, default=400)
    parser.add_argument("--utterances", type=int, default=4)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "speaker_training.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    started = time.perf_counter()
    records, arrays = corpus(args.speakers, args.utterances, 4.0, seed=0)
    corpus_s = time.perf_counter() - started

    def fresh():
        torch.manual_seed(0)
        encoder = build_speaker_encoder("ecapa_tdnn", channels=args.channels, embedding_dim=192, n_mels=80)
        return {"encoder": encoder, "loss": GeneralizedContrastiveLoss()}

    result = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "corpus_seconds": corpus_s,
        "pairs_per_batch": args.pairs,
        "crop_seconds": args.crop,
        "model": f"ecapa_tdnn C={args.channels}, 80 mel",
        "model_only": model_only(fresh(), device, args.pairs, args.crop, args.model_only_steps, args.warmup),
    }
    with tempfile.TemporaryDirectory() as run_dir:
        result["pipeline"] = pipeline(fresh(), records, arrays, args, device, Path(run_dir))
    result["ratio"] = result["pipeline"]["pairs_per_s"] / result["model_only"]["pairs_per_s"]
    result["parity"] = onnx_parity(fresh()["encoder"], device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
