"""Training through ModelService on a GPU host: the gateway (which never imports torch) finds the
GPU slot (``jobs.devices = auto`` → nvidia-smi), runs ``toitsu train`` there as a supervised
subprocess with CUDA_VISIBLE_DEVICES set, and streams its progress.

Two jobs of the same recipe (``recipes/sound/pretrain-all-gpu.yaml``, METHODS §4 formula
pre-training, 128 five-second clips a step) in one run: first with ``trainer.device=cpu`` (the
baseline, few steps), then on the GPU; the figure is the ratio of their items/s as the jobs'
own events report them.

    python bench/gpu_model_service.py --gpu-steps 600 --cpu-steps 20   # JSON into bench/results/
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import grpc

from protos.v1 import model_pb2, model_pb2_grpc
from serving.config import load_config
from serving.server import Gateway

REPO = Path(__file__).resolve().parents[1]


def run_job(stub: model_pb2_grpc.ModelServiceStub, overrides: list[str]) -> dict:
    job = stub.StartTraining(
        model_pb2.StartTrainingRequest(recipe_name="sound/pretrain-all-gpu", overrides=overrides), timeout=300
    )
    rates, started, messages = [], time.monotonic(), []
    for event in stub.WatchJob(model_pb2.WatchJobRequest(job_id=job.id), timeout=3600):
        messages.append(event.message)
        if event.message.startswith("step ") and event.job.items_per_second > 0:
            rates.append(event.job.items_per_second)
        last = event.job
    return {
        "job": last.id,
        "state": model_pb2.JobState.Name(last.state),
        "error": last.error,
        "step": last.step,
        "wall_s": round(time.monotonic() - started, 1),
        "items_per_s_last": rates[-1] if rates else 0.0,
        "items_per_s_median": sorted(rates)[len(rates) // 2] if rates else 0.0,
        "metrics": dict(last.metrics),
        "events": len(messages),
        "started": next((m for m in messages if m.startswith("started")), ""),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu-steps", type=int, default=600)
    p.add_argument("--cpu-steps", type=int, default=20)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_model_service.json")
    args = p.parse_args()
    var = Path(tempfile.mkdtemp(prefix="toitsu-gpu-"))
    overrides = {
        "server.port": "0",
        "server.metrics_port": "0",
        **{f"{m}.enabled": "false" for m in ("speaker", "sound", "face")},
        "paths.models": str(var / "models"),
        "paths.var": str(var / "var"),
        "jobs.recipes": str(REPO / "recipes"),
        "jobs.workdir": str(REPO),
        "jobs.devices": "auto",
    }
    gateway = Gateway(load_config(overrides=overrides))
    port = gateway.start(background_load=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = model_pb2_grpc.ModelServiceStub(channel)
            common = ["trainer.log_every=10", "trainer.checkpoint_every=0", "data.eval_batches=2"]
            cpu = run_job(stub, [*common, f"trainer.steps={args.cpu_steps}", "trainer.device=cpu"])
            gpu = run_job(stub, [*common, f"trainer.steps={args.gpu_steps}"])
    finally:
        gateway.stop(grace=1)
    result = {
        "host": platform.node(),
        "slots": gateway.jobs.slots,
        "cpu": cpu,
        "gpu": gpu,
        "gpu_over_cpu_items_per_s": round(gpu["items_per_s_median"] / cpu["items_per_s_median"], 2)
        if cpu["items_per_s_median"]
        else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
