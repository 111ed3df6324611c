"""The Triton repository: a generated sibling of ``models/`` that a Triton server loads.

``models/`` stays what the embedded backend reads and what export publishes into (with the
``onnxruntime`` variant's ``config.pbtxt``). Triton's config is per model, not per version, and the
python backend wants a ``model.py`` inside each version folder, so the other variants cannot live
in ``models/`` beside the default config without changing what the embedded backend and every
other reader see. They are generated into a separate folder instead (``build/triton-repo`` by
default)::

    build/triton-repo/<name>/config.pbtxt           rendered from the newest card for the variant
    build/triton-repo/<name>/<version>/card.json    → models/<name>/<version>/card.json
    build/triton-repo/<name>/<version>/model.onnx   → models/<name>/<version>/model.onnx
    build/triton-repo/<name>/<version>/model.py     python variant: export/triton_python_model.py
    build/triton-repo/<name>/<version>/model.plan   → tensorrt variant (built by export/tensorrt.py)

Model files are symbolic links by default (a local Triton reads them in place) or copies with
``copy=True`` (a repository to ship to another host). Each model folder is assembled beside its
final place and renamed into it. Regenerate after every export: the folder is derived, never edited.

    python -m export.triton_python_backend --models models --out build/triton-repo --variant python
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from contracts.card import CARD_FILE, load_card
from export.repository import versions
from export.triton_config import VARIANTS, config_pbtxt

MODEL_PY = Path(__file__).with_name("triton_python_model.py")
DEFAULT_MODALITIES = ("speaker", "face", "sound")  # what the gateway can route to Triton


def write_triton_repository(
    models_dir: Path,
    out_dir: Path,
    *,
    variant: str = "python",
    names: list[str] | None = None,
    copy: bool = False,
    **options: Any,
) -> list[Path]:
    """Generate ``out_dir`` from ``models_dir`` for ``variant``; returns the model folders written.

    ``names``: the models to include (default: every embedding model). ``options`` go to
    :func:`export.triton_config.config_pbtxt` (``kind``, ``instances``, ``tensorrt_fp16``,
    ``version_policy``, ``intra_op_threads``, ``max_padding``).
    """
    models_dir, out_dir = Path(models_dir).resolve(), Path(out_dir)
    if variant not in VARIANTS:
        raise ValueError(f"unknown Triton variant {variant!r} (known: {', '.join(VARIANTS)})")
    chosen = names if names is not None else _embedding_models(models_dir)
    if not chosen:
        raise FileNotFoundError(f"no models to write from {models_dir}; run `make models` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_model(models_dir, out_dir, name, variant=variant, copy=copy, **options) for name in chosen]


def write_model(
    models_dir: Path, out_dir: Path, name: str, *, variant: str, copy: bool = False, **options: Any
) -> Path:
    """One model folder of the Triton repository (all its versions), swapped in atomically."""
    found = versions(models_dir, name)
    if not found:
        raise FileNotFoundError(f"model {name!r} has no versions in {models_dir}")
    staged = out_dir / f".staging-{name}-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    try:
        for version in found:
            _write_version(models_dir / name / str(version), staged / str(version), variant, copy)
        card = load_card(models_dir / name / str(found[-1]))
        (staged / "config.pbtxt").write_text(config_pbtxt(card, variant=variant, **options), encoding="utf-8")
        final = out_dir / name
        if final.exists():
            trash = out_dir / f".old-{name}-{os.getpid()}"
            os.replace(final, trash)
            shutil.rmtree(trash)
        os.replace(staged, final)
        return final
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _write_version(source: Path, target: Path, variant: str, copy: bool) -> None:
    card = load_card(source)
    files = [CARD_FILE, "model.plan" if variant == "tensorrt" else card.file]
    target.mkdir()
    for file in files:
        if not (source / file).is_file():
            hint = " (build it on the GPU host: export.tensorrt.build_plan)" if file == "model.plan" else ""
            raise FileNotFoundError(f"{source / file} is missing{hint}")
        if copy:
            shutil.copy2(source / file, target / file)
        else:
            (target / file).symlink_to((source / file).resolve())
    if variant == "python":
        shutil.copyfile(MODEL_PY, target / "model.py")


def _embedding_models(models_dir: Path) -> list[str]:
    names = []
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = versions(models_dir, folder.name)
        if found and load_card(folder / str(found[-1])).modality in DEFAULT_MODALITIES:
            names.append(folder.name)
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path("build/triton-repo"))
    parser.add_argument("--variant", choices=VARIANTS, default="python")
    parser.add_argument(
        "--name", action="append", dest="names", help="model to include (repeatable; default: embedding models)"
    )
    parser.add_argument("--kind", choices=("KIND_CPU", "KIND_GPU"), default="KIND_CPU")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument(
        "--tensorrt-fp16", action="store_true", help="onnxruntime variant on KIND_GPU: TensorRT EP in FP16"
    )
    parser.add_argument("--version-policy", default="latest:1")
    parser.add_argument("--intra-op-threads", type=int, default=0)
    parser.add_argument("--copy", action="store_true", help="copy model files instead of linking them")
    args = parser.parse_args(argv)
    written = write_triton_repository(
        args.models,
        args.out,
        variant=args.variant,
        names=args.names,
        copy=args.copy,
        kind=args.kind,
        instances=args.instances,
        tensorrt_fp16=args.tensorrt_fp16,
        version_policy=args.version_policy,
        intra_op_threads=args.intra_op_threads,
    )
    for path in written:
        print(f"{path}: {args.variant} variant")


if __name__ == "__main__":
    main()
