"""The method table of issue 6: held-out EER of the speaker recipes on the generated corpus.

Trains each CPU recipe in ``recipes/speaker/`` (same encoder, data, steps and seed; only the
method / sampler differ) and evaluates it, plus the untrained encoder, on every pair of held-out
utterances (48 pseudo-speakers never seen in training). Writes JSON and prints a Markdown table.

    .venv/bin/python bench/speaker_methods.py                      # ~30 min on 2 CPU cores
    .venv/bin/python bench/speaker_methods.py --steps 50 --only synthetic-gcl-sup   # quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("synthetic-gcl-unsup", "synthetic-gcl-semi", "synthetic-gcl-sup", "synthetic-meta", "synthetic-aam")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "speaker-methods")
    parser.add_argument("--steps", type=int, default=None, help="override trainer.steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=list(RECIPES))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "speaker_methods.json")
    args = parser.parse_args()
    rows = [_untrained(args)] + [_train(name, args) for name in args.only]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print("\n| recipe | labels | held-out EER | minDCF 0.01 | minDCF 0.05 | train s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['recipe']} | {r['labels']} | {r['eer']:.2%} | {r['min_dcf_01']:.3f} | {r['min_dcf_05']:.3f} "
            f"| {r['train_s']:.0f} |"
        )
    print(f"\nwrote {args.out}")


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = [f"trainer.seed={args.seed}"]
    return extra + ([f"trainer.steps={args.steps}"] if args.steps else [])


def _row(recipe: str, labels: str, report: dict, train_s: float) -> dict:
    return {
        "recipe": recipe,
        "labels": labels,
        "eer": report["eer"],
        "trials": report["trials"],
        "min_dcf_01": report["min_dcf"]["0.01"]["value"],
        "min_dcf_05": report["min_dcf"]["0.05"]["value"],
        "train_s": train_s,
    }


def _untrained(args: argparse.Namespace) -> dict:
    out = args.runs / f"untrained-seed{args.seed}"
    _toitsu(
        "eval",
        str(REPO / "recipes/speaker/synthetic-gcl-sup.yaml"),
        *_overrides(args),
        "--untrained",
        "--out",
        str(out),
    )
    return _row("random init (untrained)", "none", json.loads((out / "report.json").read_text()), 0.0)


def _train(name: str, args: argparse.Namespace) -> dict:
    run_dir = args.runs / f"{name}-seed{args.seed}"
    _toitsu("train", str(REPO / f"recipes/speaker/{name}.yaml"), *_overrides(args), "--run-dir", str(run_dir))
    run = json.loads((run_dir / "run.json").read_text())
    labels = {
        "synthetic-gcl-unsup": "none",
        "synthetic-gcl-semi": f"{run['labelled_speakers']} of {run['train_speakers']} speakers",
    }.get(name, "all")
    return _row(name, labels, run["eval"], run["wall_time_s"])


def _toitsu(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "toitsu", *argv], cwd=REPO, check=True)


if __name__ == "__main__":
    main()
