"""DDP on CPU: two processes on gloo launched by torchrun train the toy task in lock step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("ddp_script.py")


def torchrun(run_dir: Path, steps: int) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(SCRIPT),
        str(run_dir),
        str(steps),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.integration
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    out = torchrun(tmp_path, 12)
    assert "rank 0: step 12" in out and "rank 1: step 12" in out
    ranks = [torch.load(tmp_path / f"params-rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name, state in ranks[0].items():
        for key, value in state.items():
            assert torch.equal(value, ranks[1][name][key]), f"{name}.{key} differs between ranks"
    assert not torch.equal(ranks[0]["loss"]["w"], torch.tensor(1.0))  # the loss's scalars trained too
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 8, 12]
    assert records[-1]["loss"] < 0.5 * records[0]["loss"]
    # Extending the run resumes both ranks from the shared checkpoint (step 12).
    out = torchrun(tmp_path, 16)
    assert "rank 1: step 16" in out
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        4,
        8,
        12,
        16,
    ]
