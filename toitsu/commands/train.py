"""``toitsu train RECIPE.yaml [section.key=value …]``, ``toitsu eval``, ``toitsu export RUN``.

Training runs under ``torchrun`` unchanged (``torchrun --nproc_per_node=8 -m toitsu train …``):
the trainer reads the distributed environment itself.

A recipe's top-level ``kind`` says what it trains: ``speaker`` (the default, so speaker recipes
need not say it), ``sound`` (``training/recipes/sound.py``: formula pre-training and k-shot
fine-tuning) or ``face`` (``training/recipes/face.py``: graph grouping / GCL on face tracks). A run folder's ``recipe.yaml`` carries the kind of the run, so ``toitsu eval RUN``
and ``toitsu export RUN`` dispatch on it too.
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
    p.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx",
                   help="tensorrt also builds a model.plan where TensorRT is importable")
    p.set_defaults(run=export)


RECIPE_KINDS = ("speaker", "sound", "face")


def _load_any(recipe: Path, overrides: list[str]) -> tuple[str, object]:
    """(kind, recipe dataclass) of a recipe file; ``kind`` defaults to ``speaker``."""
    from training.recipes.config import RecipeError, apply_overrides, build_recipe, read_recipe_yaml

    try:
        data = apply_overrides(read_recipe_yaml(recipe), overrides)
        kind = data.get("kind", "speaker")
        if kind == "sound":
            from training.recipes.sound import SoundRecipe

            return kind, build_recipe(data, SoundRecipe, source=str(recipe))
        if kind == "face":
            from training.recipes.face import FaceRecipe

            return kind, build_recipe(data, FaceRecipe, source=str(recipe))
        if kind != "speaker":
            raise RecipeError([f"kind: expected one of {', '.join(RECIPE_KINDS)}, got {kind!r}"], str(recipe))
        from training.recipes.speaker import SpeakerRecipe

        data.pop("kind", None)  # the speaker schema predates the key
        return kind, build_recipe(data, SpeakerRecipe, source=str(recipe))
    except (RecipeError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None


def _load(recipe: Path, overrides: list[str]):
    return _load_any(recipe, overrides)[1]


def train(args: argparse.Namespace) -> int:
    kind, recipe = _load_any(args.recipe, args.overrides)
    run_dir = args.run_dir or Path("runs") / args.recipe.stem
    if kind == "sound":
        from training.recipes.sound import train_sound_recipe

        run = train_sound_recipe(recipe, run_dir, resume=not args.no_resume, evaluate=not args.no_eval)
        if "eval" in run:
            print(f"{run_dir}: step {run['step']}, accuracy {run['eval']['accuracy']:.2%} on {run['eval']['data']}")
        return 0
    if kind == "face":
        from training.recipes.face import train_face_recipe

        run = train_face_recipe(recipe, run_dir, resume=not args.no_resume, evaluate=not args.no_eval)
        if "eval" in run:
            print(f"{run_dir}: step {run['step']}, held-out EER {run['eval']['eer']:.2%} "
                  f"(low vs low {_percent(run['eval']['eer_low_low'])}) on {run['eval']['frames']} frames")
        return 0
    from training.recipes.speaker_training import train_recipe

    run = train_recipe(recipe, run_dir, resume=not args.no_resume, evaluate=not args.no_eval)
    if "eval" in run:
        print(f"{run_dir}: step {run['step']}, held-out EER {run['eval']['eer']:.2%} "
              f"({run['eval']['trials']} trials), minDCF(0.01) {run['eval']['min_dcf']['0.01']['value']:.3f}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    kind, _ = _load_any(args.target if args.untrained else args.target / "recipe.yaml", args.overrides)
    if kind == "sound":
        return _evaluate_sound(args)
    if kind == "face":
        return _evaluate_face(args)
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
    from export.trained import Embedders, export_trained_run
    from serving.offline import face_file_embedder, file_embedder

    kind, _ = _load_any(args.run_dir / "recipe.yaml", [])
    version_dir = export_trained_run(kind, args.run_dir, args.models, args.work,
                                     Embedders(audio=file_embedder, face=face_file_embedder), name=args.name)
    print(f"published {version_dir}")
    if args.format == "tensorrt":
        from export.tensorrt import TensorRTUnavailable, build_plan_for_version

        try:
            print(f"built {build_plan_for_version(version_dir)}")
        except TensorRTUnavailable as exc:
            raise SystemExit(f"error: {exc}") from None
    return 0


def _evaluate_sound(args: argparse.Namespace) -> int:
    """Accuracy of a sound run (or of a recipe's untrained model) on its test fold / fresh formula clips."""
    from torch import nn

    from training.recipes import sound

    if args.untrained:
        from training.trainer.rng import seed_everything

        recipe = _load(args.target, args.overrides)
        seed_everything(recipe.trainer.seed)  # the initial weights `toitsu train` starts from
        encoder = sound.build_sound_model(recipe)
        name = f"{args.target.stem}-untrained"
        out = args.out or Path("runs") / name / "eval"
        head = None
    else:
        loaded = sound.load_sound_run(args.target)
        recipe = _load(args.target / "recipe.yaml", args.overrides)
        encoder, head, name, out = loaded.encoder, loaded.head, args.target.name, args.out or args.target / "eval"
    if recipe.data.formula is not None:
        test, classes = [], list(sound.formula_dataset(recipe.data.formula).class_names)
    else:
        _, test, classes, _ = sound.few_shot_split(recipe.data)
    if head is None:
        if recipe.init_from:
            sound.initialise_from(encoder, recipe)
        head = nn.Linear(int(encoder.embedding_dim), len(classes))
    report = sound.evaluate_sound(recipe, encoder, head, out, name=name, test=test, classes=classes)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{name}: accuracy {report['accuracy']:.2%} (balanced {report['balanced_accuracy']:.2%}) on "
              f"{report['data']}; report and confusion matrix in {out}")
    return 0


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _evaluate_face(args: argparse.Namespace) -> int:
    """Held-out EERs (overall, low vs low) of a face run, or of a recipe's untrained model."""
    from training.recipes import face

    if args.untrained:
        from training.trainer.rng import seed_everything

        recipe = _load(args.target, args.overrides)
        seed_everything(recipe.trainer.seed)  # the initial weights `toitsu train` starts from
        encoder, name = face.build_face_model(recipe).eval(), f"{args.target.stem}-untrained"
        out = args.out or Path("runs") / name / "eval"
    else:
        _, encoder, _, _ = face.load_face_run(args.target)
        recipe = _load(args.target / "recipe.yaml", args.overrides)
        name, out = args.target.name, args.out or args.target / "eval"
    tracks, _ = face.face_tracks(recipe.data)
    report = face.evaluate_face(encoder, tracks.subset("heldout"), out, name=name,
                                max_frames=recipe.data.max_eval_frames)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{name}: EER {_percent(report['eer'])}, low vs low {_percent(report['eer_low_low'])}, high vs high "
              f"{_percent(report['eer_high_high'])} on {report['frames']} held-out frames; report in {out}")
    return 0
