"""METHODS §5's table on the generated face-track corpus: graph grouping (T = 1, 2, 3; ncut) vs GCL.

Trains every recipe in ``recipes/face/`` (same corpus, batches, encoder, steps; only ``method``
differs) for each seed (``trainer.seed``: initial weights and batch draws; the corpus and its
identity split stay fixed) and evaluates on the held-out identities: EER over all cross-track
frame pairs and over low-quality vs low-quality pairs (and high vs high). Writes JSON (every run
and per-recipe mean ± spread over seeds, spread = half the max−min range) and prints a
Markdown table. Finished runs in ``--runs`` are reused, so an interrupted bench resumes.

    .venv/bin/python bench/face_grouping.py                    # 6 recipes × 2 seeds, ~25-50 min on 2 CPU cores
    .venv/bin/python bench/face_grouping.py --seeds 0 --steps 30 --only graph-walk-t2 gcl-pairwise   # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPES = ("graph-walk-t1", "graph-walk-t2", "graph-walk-t3", "graph-ncut", "gcl-pairwise", "graph-walk-t2-literal")
METRICS = ("eer", "eer_low_low", "eer_high_high")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "face-grouping")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--steps", type=int, help="override trainer.steps")
    parser.add_argument(
        "--set", dest="extra", nargs="*", default=[], metavar="KEY=VALUE", help="further overrides of every recipe"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 on a shared 2-core machine; 0: torch's default)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "face_grouping.json")
    args = parser.parse_args()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows = []
    for seed in args.seeds:
        for name in args.only:
            row = run_one(name, seed, args)
            rows.append(row)
            print(
                f"{name} seed {seed}: EER {row['eer']:.2%}, low-low {row['eer_low_low']:.2%}, "
                f"high-high {row['eer_high_high']:.2%} ({row['train_s']:.0f} s{', reused' if row['reused'] else ''})",
                flush=True,
            )
    summary = summarise(rows, args.only)
    result = {
        "command": " ".join(["bench/face_grouping.py", *sys.argv[1:]]),
        "threads": args.threads,
        "seeds": args.seeds,
        "wall_time_s": time.perf_counter() - started,
        "summary": summary,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print()
    print(markdown(summary, rows))
    print(f"\nwrote {args.out}")


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict:
    from training.recipes.config import load_recipe
    from training.recipes.face import FaceRecipe, train_face_recipe

    overrides = [f"trainer.seed={seed}", "trainer.progress=false", "trainer.tensorboard=false", *args.extra]
    overrides += [f"trainer.steps={args.steps}"] if args.steps else []
    recipe = load_recipe(REPO / "recipes" / "face" / f"{name}.yaml", overrides, schema=FaceRecipe)
    run_dir = args.runs / f"{name}-seed{seed}"
    done = run_dir / "run.json"
    reused = (
        done.exists()
        and json.loads(done.read_text()).get("step") == recipe.trainer.steps
        and "eval" in json.loads(done.read_text())
    )
    run = json.loads(done.read_text()) if reused else train_face_recipe(recipe, run_dir)
    report = run["eval"]
    return {
        "recipe": name,
        "seed": seed,
        "method": recipe.method,
        "steps": run["step"],
        "train_s": run["wall_time_s"],
        "reused": reused,
        "final_loss": run["metrics"].get("loss"),
        "frames": report["frames"],
        "low_quality_frames": report["low_quality_frames"],
        "pairs": report["pairs"],
        **{m: report[m] for m in METRICS},
    }


def summarise(rows: list[dict], recipes: list[str]) -> dict:
    """Per recipe and metric: mean, spread (half the range) and the per-seed values."""
    out: dict[str, dict[str, Any]] = {}
    for name in recipes:
        mine = [r for r in rows if r["recipe"] == name]
        out[name] = {
            m: {
                "mean": statistics.mean(r[m] for r in mine),
                "spread": (max(r[m] for r in mine) - min(r[m] for r in mine)) / 2,
                "values": [r[m] for r in mine],
            }
            for m in METRICS
        }
        out[name]["seeds"] = len(mine)
    return out


def markdown(summary: dict, rows: list[dict]) -> str:
    labels = {
        "graph-walk-t1": "graph grouping, walk T=1",
        "graph-walk-t2": "graph grouping, walk T=2",
        "graph-walk-t3": "graph grouping, walk T=3",
        "graph-ncut": "graph grouping, ncut",
        "gcl-pairwise": "GCL pairwise (baseline)",
        "graph-walk-t2-literal": "graph grouping, walk T=2, literal (a return to i counts)",
    }
    pairs = rows[0]["pairs"] if rows else {}
    header = (
        f"| method | seeds | EER overall ({pairs.get('overall', {}).get('targets', '?')} target pairs) "
        f"| EER low vs low ({pairs.get('low_low', {}).get('targets', '?')}) "
        f"| EER high vs high ({pairs.get('high_high', {}).get('targets', '?')}) |"
    )
    lines = [header, "| --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        cells = [f"{s[m]['mean']:.2%} ± {s[m]['spread']:.2%}" for m in METRICS]
        lines.append(f"| {labels.get(name, name)} | {s['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
