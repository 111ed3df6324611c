"""``toitsu train RECIPE.yaml [section.key=value …]``, ``toitsu eval``, ``toitsu export RUN``.

Training runs under ``torchrun`` unchanged (``torchrun --nproc_per_node=8 -m toitsu train …``):
the trainer reads the distributed environment itself.

A recipe's top-level ``kind`` says what it trains (``speaker`` when absent): one lookup in
``training.recipes.kinds.KINDS`` gives its schema and its train and eval entry points. A run
folder's ``recipe.yaml`` carries the kind of the run, so ``toitsu eval RUN`` and ``toitsu export
RUN`` dispatch on it too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports training (torch) only when a command runs
    from training.recipes.kinds import Kind


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train a model from a recipe (YAML; unknown keys are errors)")
    p.add_argument("recipe", type=Path)
    p.add_argument("overrides", nargs="*", metavar="SECTION.KEY=VALUE")
    p.add_argument("--run-dir", type=Path, help="default: runs/<recipe name>")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run folder")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation at the end")
    p.add_argument(
        "--check",
        action="store_true",
        help="only validate the recipe and build its model and loss; print {kind, steps, export_name} as JSON",
    )
    p.set_defaults(run=train)
    p = commands.add_parser("eval", help="evaluate a run (or a recipe's untrained model) on its trials / test fold")
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
    p.add_argument(
        "--format",
        choices=("onnx", "tensorrt"),
        default="onnx",
        help="tensorrt also builds a model.plan where TensorRT is importable",
    )
    p.add_argument(
        "--robustness",
        action="store_true",
        help="speaker runs: add the red team's summary to the card (a few CPU minutes; "
        "or export_robustness: true in the recipe)",
    )
    p.add_argument(
        "--result", type=Path, help="also write {name, version, folder} of the published version here (JSON)"
    )
    p.set_defaults(run=export)


def _load(recipe: Path, overrides: list[str], *, check: bool = False) -> tuple[Kind, Any]:
    """(kind, recipe dataclass) through ``KINDS``; a bad recipe exits with its message."""
    from training.recipes.config import RecipeError
    from training.recipes.kinds import load_kind_recipe

    try:
        return load_kind_recipe(recipe, overrides, check=check)
    except (RecipeError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None


def train(args: argparse.Namespace) -> int:
    # check: the model and method build before any data is (a synthetic corpus takes minutes).
    kind, recipe = _load(args.recipe, args.overrides, check=True)
    if getattr(args, "check", False):  # what ModelService.StartTraining asks before it accepts a job
        trainer = getattr(recipe, "trainer", None)
        summary = {
            "kind": kind.name,
            "steps": getattr(trainer, "steps", 0),
            "export_name": getattr(recipe, "export_name", ""),
        }
        print(json.dumps(summary))
        return 0
    run_dir = args.run_dir or Path("runs") / args.recipe.stem
    run = kind.train(recipe, run_dir, resume=not args.no_resume, evaluate=not args.no_eval)
    if "eval" in run:
        print(f"{run_dir}: step {run['step']}, {kind.describe_run(run['eval'])}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    if args.untrained:
        kind, recipe = _load(args.target, args.overrides)
        run_dir, name = None, f"{args.target.stem}-untrained"
        out = args.out or Path("runs") / name / "eval"
    else:
        kind, recipe = _load(args.target / "recipe.yaml", args.overrides)
        run_dir, name, out = args.target, args.target.name, args.out or args.target / "eval"
    report = kind.evaluate(recipe, run_dir, out, name=name)
    print(json.dumps(report, indent=2) if args.json else f"{name}: {kind.describe_report(report, out)}")
    return 0


def export(args: argparse.Namespace) -> int:
    from contracts.atomic import write_json_atomic
    from contracts.card import load_card
    from export.parity import ParityError
    from export.trained import Embedders, export_trained_run
    from serving.jobs.commands import PARITY_EXIT
    from serving.offline import face_file_embedder, file_embedder

    # One lookup for the kind (KINDS), one for its exporter (export.trained.EXPORTERS).
    if not (args.run_dir / "run.json").is_file():
        raise SystemExit(f"error: {args.run_dir} is not a finished run (no run.json): train it to the end first")
    kind = _load(args.run_dir / "recipe.yaml", [])[0].name
    try:
        version_dir = export_trained_run(
            kind,
            args.run_dir,
            args.models,
            args.work,
            Embedders(audio=file_embedder, face=face_file_embedder, robustness=getattr(args, "robustness", False)),
            name=args.name,
        )
    except ParityError as exc:  # nothing was published; ModelService reports FAILED_PRECONDITION
        print(f"error: {exc}", file=sys.stderr)
        return PARITY_EXIT
    print(f"published {version_dir}")
    if getattr(args, "result", None) is not None:
        card = load_card(version_dir)
        write_json_atomic(args.result, {"name": card.name, "version": card.version, "folder": str(version_dir)})
    if args.format == "tensorrt":
        from export.tensorrt import TensorRTUnavailable, build_plan_for_version

        try:
            print(f"built {build_plan_for_version(version_dir)}")
        except TensorRTUnavailable as exc:
            raise SystemExit(f"error: {exc}") from None
    return 0
