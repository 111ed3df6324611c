"""Face and sound training throughput in bf16: the data pipeline against the model alone (issues 3, 4).

Both measured in one run on the same device, each as (1) model-only — training steps on one fixed
batch already on the device — and (2) pipeline — the same steps fed by the project's own batch
datasets in DataLoader workers (generated data, nothing to download):

- **faces**: graph grouping loss (random walk, T = 2) on an IResNet-50-sized encoder (stages 3-4-14-3,
  widths 64-512, 112×112 uint8 chips, normalisation inside) and on the CPU recipes' small IResNet;
  batches of 64 identities × 4 frames from ``GroupBatches`` over the generated track corpus.
  Reported as images/s (and two-view pairs/s = images/s ÷ 2, the unit of the issue's reference);
- **sounds**: formula pre-training (``recipes/sound/pretrain-all-gpu.yaml``: D1 ∪ D2 ∪ D3, 56
  classes, 128 clips of 5 s at 16 kHz, the log-mel front end in the model) with ``FormulaBatches``
  generating fresh colored noise every step. Reported as clips/s.

    python bench/bench_training_gpu.py --out $OUT/training_gpu.json           # on a GPU
    .venv/bin/python bench/bench_training_gpu.py --device cpu --smoke         # a CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.data.face_tracks import GroupBatches, render_face_tracks  # noqa: E402
from training.methods.graph_grouping import GraphGroupingLoss  # noqa: E402
from training.models.iresnet import IResNet  # noqa: E402
from training.recipes.config import load_recipe  # noqa: E402
from training.recipes.sound import SoundRecipe, build_batches, build_sound_model  # noqa: E402

FACE_MODELS = {
    "iresnet50": {"layers": (3, 4, 14, 3), "widths": (64, 128, 256, 512), "embedding_dim": 512, "input_downsample": 1},
    "iresnet-small (CPU recipes)": {
        "layers": (1, 1, 1, 1),
        "widths": (16, 32, 64, 128),
        "embedding_dim": 128,
        "input_downsample": 2,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a CPU check that it runs)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "training_gpu.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "workers": args.workers,
        "steps": args.steps,
        "faces": {},
        "sounds": {},
    }
    groups, frames = (4, 2) if args.smoke else (64, 4)
    tracks = render_face_tracks(
        identities=102 if not args.smoke else 8,
        tracks_per_identity=4,
        frames_per_track=8 if not args.smoke else 2,
        heldout_fraction=0.0,
    )
    for name, config in FACE_MODELS.items():
        if args.smoke and name == "iresnet50":
            config = {
                **config,
                "layers": (1, 1, 1, 1),
                "widths": (16, 16, 16, 16),
            }  # an 8-channel stem crashes torch 2.13 CPU backward
        result["faces"][name] = face_bench(config, tracks, groups, frames, device, args)
        print(name, json.dumps(result["faces"][name]), flush=True)
    result["sounds"]["pretrain-all-gpu"] = sound_bench(device, args)
    print("sounds", json.dumps(result["sounds"]["pretrain-all-gpu"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def face_bench(config: dict, tracks, groups: int, frames: int, device: torch.device, args) -> dict:
    encoder = IResNet(input_size=112, **config).to(device)
    if device.type == "cuda":  # channels_last helps cuDNN's bf16 convolutions (and crashed CPU backward here)
        # nn.Module.to takes memory_format at run time; torch's overloads leave it out.
        encoder = encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loss = GraphGroupingLoss("walk", 2).to(device)
    optimiser = torch.optim.SGD([*encoder.parameters(), *loss.parameters()], lr=0.05, momentum=0.9)

    def step(batch: dict) -> None:
        images, labels = batch["images"].to(device, non_blocking=True), batch["groups"].to(device, non_blocking=True)
        with autocast(device):
            embeddings = encoder(images)
        out = loss(embeddings.float(), labels)
        optimiser.zero_grad(set_to_none=True)
        out.loss.backward()
        optimiser.step()

    dataset = GroupBatches(
        tracks,
        group_by="identity",
        groups_per_batch=groups,
        frames_per_group=frames,
        seed=0,
        steps=args.steps + args.warmup,
    )
    fixed = {k: v.to(device) for k, v in dataset[0].items() if isinstance(v, torch.Tensor)}
    model_only = timed(step, (fixed for _ in range(args.steps + args.warmup)), args.warmup, device)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if args.workers else None,
    )
    pipeline = timed(step, loader, args.warmup, device)
    n = groups * frames
    return {
        "batch_images": n,
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "model_only_images_per_s": n / model_only,
        "pipeline_images_per_s": n / pipeline,
        "model_only_pairs_per_s": n / 2 / model_only,
        "pipeline_pairs_per_s": n / 2 / pipeline,
        "ratio_pipeline_vs_model": model_only / pipeline,
    }


def sound_bench(device: torch.device, args) -> dict:
    overrides = ["data.batch_size=8", "data.clip_seconds=1.0"] if args.smoke else []
    recipe = load_recipe(
        REPO / "recipes" / "sound" / "pretrain-all-gpu.yaml",
        [*overrides, f"trainer.steps={args.steps + args.warmup}"],
        schema=SoundRecipe,
    )
    encoder = build_sound_model(recipe).to(device)
    batches = build_batches(recipe, rank=0)
    head = nn.Linear(recipe.model["embedding_dim"], 56).to(device)
    optimiser = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-3)

    def step(batch: dict) -> None:
        wave, lengths = batch["waveform"].to(device, non_blocking=True), batch["lengths"].to(device, non_blocking=True)
        with autocast(device):
            logits = head(encoder(wave, lengths))
        loss = nn.functional.cross_entropy(logits.float(), batch["labels"].to(device, non_blocking=True))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    fixed = {k: v.to(device) for k, v in batches[0].items() if isinstance(v, torch.Tensor)}
    model_only = timed(step, (fixed for _ in range(args.steps + args.warmup)), args.warmup, device)
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if args.workers else None,
    )
    pipeline = timed(step, loader, args.warmup, device)
    n = recipe.data.batch_size
    return {
        "batch_clips": n,
        "clip_seconds": recipe.data.clip_seconds,
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "model_only_clips_per_s": n / model_only,
        "pipeline_clips_per_s": n / pipeline,
        "ratio_pipeline_vs_model": model_only / pipeline,
    }


def autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def timed(step: Callable[[dict], None], batches: Iterable[dict], warmup: int, device: torch.device) -> float:
    """Seconds per step after ``warmup`` steps (device synchronised at both ends)."""
    started: float | None = None
    count = 0
    for i, batch in enumerate(batches):
        if i == warmup:
            sync(device)
            started = time.perf_counter()
        step(batch)
        count += i >= warmup
    sync(device)
    if started is None:
        raise ValueError(f"no batch after the {warmup} warm-up steps")
    return (time.perf_counter() - started) / max(1, count)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
