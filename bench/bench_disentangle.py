"""METHODS §7's table on the merged procedural groups: the group-block VAE against the β-VAE.

Trains ``recipes/disentangle/procedural-group-blocks.yaml`` and ``procedural-beta-vae.yaml``
(same data, batches, encoder, decoder, latent width, β and steps; only ``method`` differs) for
each seed (``trainer.seed``: initial weights, batch order, noise and augmentations; the images
stay fixed) and evaluates on fresh images of each group: MIG per group (the method reads the
block its head assigns the group to, the β-VAE its whole latent), the merged MIG (mean gap over
all 19 factors) and the head's purity / NMI against the hidden group ids. Prints a Markdown
table (mean ± standard deviation over seeds) and writes every run as JSON.

    .venv/bin/python bench/bench_disentangle.py                # 2 recipes × 3 seeds, ~6 min on 1 CPU thread
    .venv/bin/python bench/bench_disentangle.py --seeds 0 1 --steps 1000
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
RECIPES = ("procedural-group-blocks", "procedural-beta-vae")
GROUPS = ("sprites", "shapes3d", "mpi3d")


def run_one(recipe_name: str, seed: int, steps: int | None, work: Path) -> dict[str, Any]:
    from training.recipes.disentangle import DisentangleRecipe, train_disentangle_recipe
    from training.recipes.kinds import load_kind_recipe

    overrides = [f"trainer.seed={seed}", "trainer.progress=false"] + ([f"trainer.steps={steps}"] if steps else [])
    _, recipe = load_kind_recipe(REPO / "recipes" / "disentangle" / f"{recipe_name}.yaml", overrides)
    assert isinstance(recipe, DisentangleRecipe)
    start = time.perf_counter()
    run = train_disentangle_recipe(recipe, work / f"{recipe_name}-seed{seed}", resume=False)
    report = run["eval"]
    return {
        "recipe": recipe_name,
        "seed": seed,
        "wall_s": time.perf_counter() - start,
        "mig": report["mig"],
        **{f"mig_{g}": report["mig_by_group"][g] for g in GROUPS},
        "purity": report["purity"],
        "nmi": report["nmi"],
    }


def table(rows: list[dict[str, Any]], names: list[str]) -> str:
    def cell(values: list[Any], fmt: str = ".3f") -> str:
        if any(v is None for v in values):
            return "—"
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{format(statistics.mean(values), fmt)} ± {format(spread, fmt)}"

    lines = [
        "| recipe | seeds | MIG (merged) | MIG sprites | MIG shapes3d | MIG mpi3d | head purity | head NMI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        got = [r for r in rows if r["recipe"] == name]
        groups = " | ".join(cell([r[f"mig_{g}"] for r in got]) for g in GROUPS)
        lines.append(
            f"| {name} | {len(got)} | {cell([r['mig'] for r in got])} | {groups} | "
            f"{cell([r['purity'] for r in got])} | {cell([r['nmi'] for r in got])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--steps", type=int, help="override trainer.steps")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            for name in args.only:
                rows.append(run_one(name, seed, args.steps, Path(work)))
                r = rows[-1]
                print(
                    f"{name} seed {seed}: MIG {r['mig']:.3f} "
                    + " ".join(f"{g} {r[f'mig_{g}']:.3f}" for g in GROUPS)
                    + (f" purity {r['purity']:.3f} NMI {r['nmi']:.3f}" if r["nmi"] is not None else "")
                    + f" ({r['wall_s']:.0f} s)",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(table(rows, args.only))


if __name__ == "__main__":
    main()
