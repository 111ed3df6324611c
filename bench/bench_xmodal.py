"""Blind distillation, face → voice (METHODS §8): student speaker EER on held-out identities.

Builds the generated audio-visual corpus, embeds every clip with the served face model (dlib's
ResNet, ``export.xmodal_teacher``), then trains each recipe of ``recipes/audio-visual/`` (same
student, data, steps; only ``method`` differs) for each seed and evaluates the student on every
pair of clips of the test identities (never seen in training). Also reports the teacher itself:
its face EER on the same test clips, and how often a top-K neighbour is the anchor's person.

    .venv/bin/python bench/bench_xmodal.py                          # CPU-small, ~1 h on 2 cores
    .venv/bin/python bench/bench_xmodal.py --steps 20 --seeds 0 --only teacher unsupervised
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from export.xmodal_teacher import write_dlib_teacher
from training.data.av_corpus import read_oracle
from training.data.manifest import read_manifest
from training.evaluation.verification import eer
from training.methods.teacher_sampling import cosine_matrix, load_teacher_file, neighbour_table
from training.recipes.audio_visual import AudioVisualRecipe, manifest_path, train_av_recipe
from training.recipes.config import load_recipe

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("teacher", "oracle", "same-video", "no-screening", "regression", "unsupervised")


def teacher_report(manifest: Path, teacher_file: Path, k: int) -> dict:
    """The face teacher on the corpus: face EER on test clips; neighbour precision on train clips."""
    records, oracle = read_manifest(manifest), read_oracle(manifest)
    who = np.array([oracle[str(r.extra["clip"])] for r in records])
    rows = load_teacher_file(teacher_file, records)
    test = np.array([r.split == "test" for r in records])
    sims = cosine_matrix(rows[test])
    upper = np.triu_indices(int(test.sum()), 1)
    same = who[test][:, None] == who[test][None, :]
    face_eer, _ = eer(sims[upper], same[upper])
    train = np.flatnonzero([r.split == "train" for r in records])
    videos = [str(records[i].extra["video"]) for i in train]
    out: dict = {"face_eer_test": face_eer}
    centred = rows[train] - rows[train].mean(axis=0, keepdims=True)  # as the recipes do (centre_teacher)
    for tau in (None, 0.5):
        table = neighbour_table(centred, videos, k=k, tau_pos=tau)
        hits = [who[train][n] == who[train][i] for i, n in enumerate(table)]
        flat = np.concatenate(hits) if hits else np.zeros(0)
        out[f"neighbours_tau{tau}"] = {"per_clip": float(np.mean([h.size for h in hits])),
                                       "same_person": float(flat.mean()) if flat.size else None}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "xmodal")
    parser.add_argument("--corpus", type=Path, default=REPO / "runs" / "xmodal" / "av-corpus")
    parser.add_argument("--identities", type=int, default=40)
    parser.add_argument("--steps", type=int, default=None, help="override trainer.steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", nargs="*", default=list(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], help="further recipe overrides, key=value")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "xmodal.json")
    args = parser.parse_args()
    teacher_file = args.corpus / "teacher-dlib.npz"
    common = [f"data.synthetic.out={args.corpus}", f"data.synthetic.identities={args.identities}"]
    common += [f"data.teacher={teacher_file}", *args.set] + ([f"trainer.steps={args.steps}"] if args.steps else [])
    base = REPO / "recipes" / "audio-visual"
    first = load_recipe(base / "synthetic-teacher.yaml", common, schema=AudioVisualRecipe)
    started = time.perf_counter()
    manifest = manifest_path(first.data)
    if not teacher_file.exists():
        write_dlib_teacher(manifest, teacher_file)
    print(f"corpus + teacher: {time.perf_counter() - started:.0f} s ({len(read_manifest(manifest))} clips)")
    result: dict = {"teacher": teacher_report(manifest, teacher_file, first.method.k), "runs": []}
    print(json.dumps(result["teacher"], indent=1))
    for name in args.only:
        for seed in args.seeds:
            recipe = load_recipe(
                base / f"synthetic-{name}.yaml", [*common, f"trainer.seed={seed}"], schema=AudioVisualRecipe
            )
            t0 = time.perf_counter()
            run_dir = args.runs / f"{name}-s{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)  # this bench's own run folder: a fresh run
            run = train_av_recipe(recipe, run_dir, resume=False)
            row = {"variant": name, "seed": seed, "eer": run["eval"]["eer"], "trials": run["eval"]["trials"],
                   "train_s": time.perf_counter() - t0}  # fmt: skip
            print(json.dumps(row))
            result["runs"].append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("\n| variant | held-out speaker EER, mean ± sd | seeds |")
    print("| --- | --- | --- |")
    for name in args.only:
        eers = np.array([r["eer"] for r in result["runs"] if r["variant"] == name])
        print(f"| {name} | {eers.mean():.2%} ± {eers.std(ddof=1) if eers.size > 1 else 0.0:.2%} | {eers.size} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
