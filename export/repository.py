"""Writing versions into the model repository (DESIGN §2)::

    models/<name>/config.pbtxt           generated from the newest card
    models/<name>/<version>/model.onnx
    models/<name>/<version>/card.json

A version is assembled in a staging folder beside the model and renamed into place, so the
gateway (which scans for ``<version>/card.json``) never sees a half-written version.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from contracts.card import CARD_FILE, AnyCard, load_card
from export.triton_config import config_pbtxt


def versions(models_dir: Path, name: str) -> list[int]:
    """Complete versions of ``name`` (folders with a card), ascending."""
    model_dir = models_dir / name
    if not model_dir.is_dir():
        return []
    found = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and (p / CARD_FILE).is_file()]
    return sorted(found)


def next_version(models_dir: Path, name: str) -> int:
    existing = versions(models_dir, name)
    return existing[-1] + 1 if existing else 1


def staging_dir(models_dir: Path, name: str, version: int) -> Path:
    """A fresh private folder to assemble ``name/version`` in (hidden from the gateway's scan)."""
    path = models_dir / name / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def publish(
    staged: Path,
    models_dir: Path,
    name: str,
    version: int,
    *,
    replace: bool = False,
    triton_options: Mapping[str, Any] | None = None,
) -> Path:
    """Move a staged version into place and regenerate ``config.pbtxt``; returns the version dir.

    ``triton_options`` go to :func:`export.triton_config.config_pbtxt` (``kind``, ``instances``,
    ``tensorrt_fp16``, ``version_policy``); the variant in ``models/`` is always ``onnxruntime``
    (the other variants are generated into a sibling repository, ``export/triton_python_backend.py``).
    """
    if not (staged / CARD_FILE).is_file():
        raise FileNotFoundError(f"{staged} has no {CARD_FILE}; refusing to publish an incomplete version")
    final = models_dir / name / str(version)
    if final.exists():
        if not replace:
            raise FileExistsError(f"{final} exists; versions are immutable (use the next version)")
        trash = final.with_name(f".old-{version}-{os.getpid()}")
        os.replace(final, trash)
        shutil.rmtree(trash)
    os.replace(staged, final)
    write_triton_config(models_dir, name, functools.partial(config_pbtxt, **dict(triton_options or {})))
    return final


def write_triton_config(models_dir: Path, name: str, render: Callable[[AnyCard], str] = config_pbtxt) -> Path:
    """Render ``config.pbtxt`` from the newest version's card."""
    newest = versions(models_dir, name)[-1]
    card = load_card(models_dir / name / str(newest))
    path = models_dir / name / "config.pbtxt"
    tmp = path.with_name(f".config.pbtxt.{os.getpid()}.tmp")
    tmp.write_text(render(card), encoding="utf-8")
    os.replace(tmp, path)
    return path


def loadable_versions(models_dir: Path, name: str) -> list[int]:
    """Versions whose card validates against the current schema. The default pack rebuilds the
    others, so a ``models/`` built before a schema change upgrades itself on the next ``make``."""
    from contracts.card import CardError

    found = []
    for version in versions(models_dir, name):
        try:
            load_card(models_dir / name / str(version))
        except CardError:
            continue
        found.append(version)
    return found
