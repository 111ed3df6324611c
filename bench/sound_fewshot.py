"""METHODS §4's table on the generated sound corpus: k-shot accuracy, scratch vs formula pre-training.

Pre-trains the CPU sound encoder once on each formula class set (recipes/sound/pretrain-d1,
-d2, -d3, -all; a finished run in --runs is reused), then for every k, test fold and draw
fine-tunes recipes/sound/finetune-base.yaml from scratch and from each pre-training run —
identical settings, only ``init_from`` differs — and measures accuracy on the test fold. Writes
JSON (every run, per-(k, init) mean ± std over folds × draws, and the paired difference to
scratch) and prints a Markdown table. Finished fine-tunes are reused too, so an interrupted
bench resumes where it stopped.

    .venv/bin/python bench/sound_fewshot.py          # full table: 3 k × 5 folds × 3 draws × 5 inits
    .venv/bin/python bench/sound_fewshot.py --folds 1 --draws 2 --ks 1 5 \\
        --pretrain-steps 40 --finetune-steps 20     # a quick look (minutes)

The default (225 fine-tunes of 40 steps + 4 pre-trainings of 400 steps) takes about 1-1.5 h
on 2 otherwise idle CPU cores; --folds / --draws / --ks / --inits / --*-steps shrink it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PRETRAIN = ("d1", "d2", "d3", "all")
INITS = ("scratch", *PRETRAIN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "sound-fewshot")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="test folds (1..5)")
    parser.add_argument("--draws", type=int, default=3, help="k-shot draws per (k, fold)")
    parser.add_argument("--inits", nargs="+", default=list(INITS), choices=INITS)
    parser.add_argument("--pretrain-steps", type=int, help="override the pre-training recipes' trainer.steps")
    parser.add_argument("--finetune-steps", type=int, help="override finetune-base's trainer.steps")
    parser.add_argument(
        "--set",
        dest="finetune_set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="further overrides of every fine-tune (e.g. data.synthetic.clips_per_class=20)",
    )
    parser.add_argument("--pretrain-set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: on a shared 2-core machine two threads spin-wait on each "
        "other and run 2-8× slower; 0: torch's default)",
    )
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep fine-tune checkpoints (≈4 MB each)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sound_fewshot.json")
    args = parser.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pretrained = {d: pretrain(d, args) for d in args.inits if d != "scratch"}
    cases = list(itertools.product(args.ks, args.folds, range(args.draws), args.inits))
    rows, times = [], []
    for n, (k, fold, draw, init) in enumerate(cases, 1):
        row = finetune(k, fold, draw, init, pretrained.get(init), args)
        rows.append(row)
        times.append(row["wall_s"])
        eta = statistics.mean(t for t in times if t > 0) * (len(cases) - n) if any(times) else 0.0
        print(
            f"[{n}/{len(cases)}] k={k} fold={fold} draw={draw} {init:<7} accuracy {row['accuracy']:.3f} "
            f"({row['wall_s']:.0f} s{', reused' if row['reused'] else ''}; ETA {eta / 60:.0f} min)",
            flush=True,
        )
    summary = summarise(rows, args.ks, args.inits)
    result = {
        "command": " ".join(["bench/sound_fewshot.py", *sys.argv[1:]]),
        "threads": args.threads,
        "ks": args.ks,
        "folds": args.folds,
        "draws": args.draws,
        "inits": args.inits,
        "wall_time_s": time.perf_counter() - started,
        "pretraining": pretrained,
        "summary": summary,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print()
    print(markdown(summary, args))
    print(f"\nwrote {args.out}")


def _load(path: Path, overrides: list[str]):
    from training.recipes.config import load_recipe
    from training.recipes.sound import SoundRecipe

    return load_recipe(path, overrides, schema=SoundRecipe)


def _finished(run_dir: Path, recipe) -> dict | None:
    """The run.json of a finished run of exactly this recipe, else None."""
    from training.recipes.config import recipe_hash

    path = run_dir / "run.json"
    if not path.exists():
        return None
    run = json.loads(path.read_text())
    if run.get("recipe_hash") != recipe_hash(recipe):
        raise SystemExit(f"{run_dir} holds a run of another recipe; remove it or pick another --runs")
    return run


def pretrain(dataset: str, args: argparse.Namespace) -> dict:
    """Pre-train on a formula class set (or reuse the finished run); returns its summary."""
    from training.recipes.sound import train_sound_recipe

    overrides = [
        "trainer.progress=false",
        *([f"trainer.steps={args.pretrain_steps}"] if args.pretrain_steps else []),
        *args.pretrain_set,
    ]
    recipe = _load(REPO / "recipes" / "sound" / f"pretrain-{dataset}.yaml", overrides)
    run_dir = args.runs / f"pretrain-{dataset}"
    run = _finished(run_dir, recipe)
    if run is None:
        print(
            f"pre-training on {dataset} ({recipe.trainer.steps} steps × {recipe.data.batch_size} clips) in {run_dir} …",
            flush=True,
        )
        run = train_sound_recipe(recipe, run_dir)
    print(
        f"pre-trained {dataset}: {len(run['classes'])} classes, accuracy {run['eval']['accuracy']:.3f} on "
        f"{run['eval']['data']}, {run['wall_time_s']:.0f} s",
        flush=True,
    )
    return {
        "run": str(run_dir),
        "steps": run["step"],
        "classes": len(run["classes"]),
        "accuracy": run["eval"]["accuracy"],
        "wall_time_s": run["wall_time_s"],
    }


def finetune(k: int, fold: int, draw: int, init: str, source: dict | None, args: argparse.Namespace) -> dict:
    """One fine-tune (or its finished run): accuracy on the test fold."""
    from training.recipes.sound import train_sound_recipe

    overrides = [
        f"data.few_shot.test_fold={fold}",
        f"data.few_shot.k={k}",
        f"data.few_shot.draw={draw}",
        f"init_from={source['run'] if source else 'null'}",
        "trainer.progress=false",
        *([f"trainer.steps={args.finetune_steps}"] if args.finetune_steps else []),
        *args.finetune_set,
    ]
    recipe = _load(REPO / "recipes" / "sound" / "finetune-base.yaml", overrides)
    run_dir = args.runs / "finetune" / f"k{k}-fold{fold}-draw{draw}-{init}"
    run, reused, t0 = _finished(run_dir, recipe), True, time.perf_counter()
    if run is None:
        run, reused = train_sound_recipe(recipe, run_dir), False
        if not args.keep_checkpoints:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return {
        "k": k,
        "fold": fold,
        "draw": draw,
        "init": init,
        "accuracy": run["eval"]["accuracy"],
        "balanced_accuracy": run["eval"]["balanced_accuracy"],
        "test_clips": run["test_clips"],
        "train_clips": run["train_clips"],
        "final_train_loss": run["metrics"].get("loss"),
        "wall_s": 0.0 if reused else time.perf_counter() - t0,
        "reused": reused,
        "run": str(run_dir),
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict], ks: list[int], inits: list[str]) -> list[dict]:
    """Per (k, init): mean ± std of accuracy over folds × draws, and the paired gain over scratch."""
    by = {(r["k"], r["init"], r["fold"], r["draw"]): r["accuracy"] for r in rows}
    out = []
    for k, init in itertools.product(ks, inits):
        keys = sorted((f, d) for kk, i, f, d in by if kk == k and i == init)
        accuracy = [by[(k, init, *key)] for key in keys]
        mean, std = _mean_std(accuracy)
        entry = {"k": k, "init": init, "n": len(accuracy), "mean": mean, "std": std}
        if init != "scratch" and all((k, "scratch", *key) in by for key in keys):
            gains = [by[(k, init, *key)] - by[(k, "scratch", *key)] for key in keys]
            gain_mean, gain_std = _mean_std(gains)
            entry.update(
                gain_vs_scratch=gain_mean,
                gain_std=gain_std,
                wins=sum(g > 0 for g in gains),
                losses=sum(g < 0 for g in gains),
            )
            scratch = statistics.mean(by[(k, "scratch", *key)] for key in keys)
            entry["ratio_vs_scratch"] = mean / scratch if scratch else None
        out.append(entry)
    return out


def markdown(summary: list[dict], args: argparse.Namespace) -> str:
    """Accuracy mean ± std per k (rows) and initialisation (columns); Δ = paired gain over scratch."""
    inits = list(args.inits)
    n = len(args.folds) * args.draws
    lines = [
        f"Test-fold accuracy, mean ± std over {len(args.folds)} fold(s) × {args.draws} draw(s) = {n} runs "
        f"per cell (Δ: paired difference to scratch; W/L: runs better/worse than scratch)",
        "",
        "| k | " + " | ".join(inits) + " |",
        "| --- |" + " --- |" * len(inits),
    ]
    cells = {(e["k"], e["init"]): e for e in summary}
    for k in args.ks:
        row = []
        for init in inits:
            e = cells[(k, init)]
            text = f"{e['mean']:.3f} ± {e['std']:.3f}"
            if "gain_vs_scratch" in e:
                text += f" (Δ {e['gain_vs_scratch']:+.3f}, W/L {e['wins']}/{e['losses']})"
            row.append(text)
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
