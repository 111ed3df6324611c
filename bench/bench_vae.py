"""METHODS §6's table on scikit-learn's 8×8 digits: the label-prior VAE against the conditional VAE.

Trains each recipe of ``recipes/generative/`` named in ``--only`` (same data split, batches,
sizes, steps; only ``model`` differs) for each seed (``trainer.seed``: initial weights, batch
order and noise; the split and the independent classifier stay fixed) and evaluates: the
fraction of 100 samples per class that the classifier (trained on the real training split only)
labels as requested, FID and KID on its features against the held-out images, and the test ELBO.
Prints a Markdown table (mean ± standard deviation over seeds) and writes every run as JSON.

    .venv/bin/python bench/bench_vae.py                     # 2 recipes × 3 seeds, a few minutes on 1 CPU thread
    .venv/bin/python bench/bench_vae.py --only digits-label-prior digits-label-prior-classify digits-cvae digits-m2-semi
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPES = ("digits-label-prior", "digits-label-prior-classify", "digits-cvae", "digits-m2-semi")
METRICS = ("requested_class_accuracy", "fid", "kid", "test_elbo")


def run_one(recipe_name: str, seed: int, steps: int | None, work: Path) -> dict[str, Any]:
    from training.recipes.generative import GenerativeRecipe, train_generative_recipe
    from training.recipes.kinds import load_kind_recipe

    overrides = [f"trainer.seed={seed}", "trainer.progress=false"] + ([f"trainer.steps={steps}"] if steps else [])
    _, recipe = load_kind_recipe(REPO / "recipes" / "generative" / f"{recipe_name}.yaml", overrides)
    assert isinstance(recipe, GenerativeRecipe)
    start = time.perf_counter()
    run = train_generative_recipe(recipe, work / f"{recipe_name}-seed{seed}", resume=False)
    return {
        "recipe": recipe_name,
        "seed": seed,
        "wall_s": time.perf_counter() - start,
        **{k: run["eval"][k] for k in METRICS},
    }


def table(rows: list[dict[str, Any]], names: list[str]) -> str:
    def cell(values: list[float], fmt: str) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{format(statistics.mean(values), fmt)} ± {format(spread, fmt)}"

    lines = [
        "| recipe | seeds | requested-class accuracy | FID | KID | test ELBO (nats) |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        got = [r for r in rows if r["recipe"] == name]
        lines.append(
            f"| {name} | {len(got)} | {cell([r['requested_class_accuracy'] * 100 for r in got], '.1f')} % | "
            f"{cell([r['fid'] for r in got], '.2f')} | {cell([r['kid'] for r in got], '.3f')} | "
            f"{cell([r['test_elbo'] for r in got], '.2f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=["digits-label-prior", "digits-cvae"], choices=RECIPES)
    parser.add_argument("--steps", type=int, help="override trainer.steps")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.only:
            for seed in args.seeds:
                rows.append(run_one(name, seed, args.steps, Path(work)))
                r = rows[-1]
                print(
                    f"{name} seed {seed}: accuracy {r['requested_class_accuracy']:.3f} FID {r['fid']:.2f} "
                    f"KID {r['kid']:.3f} ELBO {r['test_elbo']:.2f} ({r['wall_s']:.0f} s)",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(table(rows, args.only))


if __name__ == "__main__":
    main()
