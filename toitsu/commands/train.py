"""``toitsu train RECIPE.yaml [section.key=value …]``, ``toitsu eval``, ``toitsu export RUN``.

Training runs under ``torchrun`` unchanged (``torchrun --nproc_per_node=8 -m toitsu train …``):
the trainer reads the distributed environment itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train a model from a recipe (YAML; unknown keys are errors)")
    p.add_argument("recipe", type=Path)
    p.add_argument("overrides", nargs="*", metavar="SECTION.KEY=VALUE")
    p.add_argument("--run-dir", type=Path, help="default: runs/<recipe name>")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run folder")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation at the end")
    p.set_defaults(run=train)
    p = commands.add_parser("eval", help="evaluate a run (or a recipe's untrained model) on its trials")
    p.add_argument("target", type=Path, help="a run folder, or a recipe with --untrained")
    p.add_argument("overrides", nargs="*", metavar="SECTION.KEY=VALUE")
    p.add_argument("--untrained", action="store_true", help="evaluate the recipe's randomly initialised model")
    p.add_argument("--out", type=Path, help="report folder (default: RUN/eval or runs/<recipe>-untrained/eval)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=evaluate)
    p = commands.add_parser("export", help="export a run into the model repository (ONNX, parity, calibration)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--work", type=Path, default=Path("build"))
    p.add_argument("--name", help="model name (default: the recipe's export_name)")
    p.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx",
                   help="tensorrt also builds a model.plan where TensorRT is importable")
    p.set_defaults(run=export)


def _load(recipe: Path, overrides: list[str]):
    from training.recipes.config import RecipeError, load_recipe
    from training.recipes.speaker import SpeakerRecipe

    try:
        return load_recipe(recipe, overrides, schema=SpeakerRecipe)
    except (RecipeError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None


def train(args: argparse.Namespace) -> int:
    from training.recipes.speaker_training import train_recipe

    recipe = _load(args.recipe, args.overrides)
    run_dir = args.run_dir or Path("runs") / args.recipe.stem
    run = train_recipe(recipe, run_dir, resume=not args.no_resume, evaluate=not args.no_eval)
    if "eval" in run:
        print(f"{run_dir}: step {run['step']}, held-out EER {run['eval']['eer']:.2%} "
              f"({run['eval']['trials']} trials), minDCF(0.01) {run['eval']['min_dcf']['0.01']['value']:.3f}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from training.recipes.speaker import build_encoder, load_trained_encoder
    from training.recipes.speaker_training import evaluate_encoder_on_data

    if args.untrained:
        from training.trainer.rng import seed_everything

        recipe = _load(args.target, args.overrides)
        seed_everything(recipe.trainer.seed)  # the initial weights `toitsu train` starts from
        encoder, name = build_encoder(recipe).eval(), f"{args.target.stem}-untrained"
        out = args.out or Path("runs") / name / "eval"
    else:
        trained = load_trained_encoder(args.target)
        recipe = _load(args.target / "recipe.yaml", args.overrides)
        encoder, name, out = trained.encoder, args.target.name, args.out or args.target / "eval"
    report = evaluate_encoder_on_data(encoder, recipe, out, name=name)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{name}: EER {report['eer']:.2%} on {report['trials']} trials, minDCF(0.01) "
              f"{report['min_dcf']['0.01']['value']:.3f}, minDCF(0.05) {report['min_dcf']['0.05']['value']:.3f}; "
              f"report and DET plot in {out}")
    return 0


def export(args: argparse.Namespace) -> int:
    from export.trained_speaker import export_run
    from serving.offline import file_embedder

    version_dir = export_run(args.run_dir, args.models, args.work, file_embedder, name=args.name)
    print(f"published {version_dir}")
    if args.format == "tensorrt":
        from export.tensorrt import TensorRTUnavailable, build_plan_for_version

        try:
            print(f"built {build_plan_for_version(version_dir)}")
        except TensorRTUnavailable as exc:
            raise SystemExit(f"error: {exc}") from None
    return 0
