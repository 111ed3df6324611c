"""The command lines jobs run, and the checks that happen before a job is accepted.

The gateway never imports torch, training or export (DESIGN §1): a job is ``toitsu train`` or
``toitsu export`` in a subprocess (``torch.distributed.run`` around ``toitsu train`` for several
processes), and a recipe is validated by ``toitsu train --check``, which loads it strictly and
builds its model and loss without training, printing what the job needs to know as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from serving.errors import InvalidInput, NotFound, Unavailable
from serving.jobs.store import flatten_numbers

PARITY_EXIT = 3  # `toitsu export` exits with this when a parity check fails (nothing published)


@dataclass(frozen=True)
class CheckedRecipe:
    """What ``toitsu train --check`` reports of a valid recipe."""

    kind: str
    steps: int
    export_name: str


def recipe_path(recipes_dir: Path, name: str) -> Path:
    """``speaker/synthetic-base`` → ``<recipes>/speaker/synthetic-base.yaml``; NotFound lists what exists."""
    parts = Path(name.removesuffix(".yaml"))
    if not name or parts.is_absolute() or ".." in parts.parts:
        raise InvalidInput(
            f"recipe_name {name!r} must be a path under the recipes folder, like 'speaker/synthetic-base'"
        )
    path = recipes_dir / parts.with_suffix(".yaml")
    if not path.is_file():
        known = sorted(str(p.relative_to(recipes_dir).with_suffix("")) for p in recipes_dir.rglob("*.yaml"))
        raise NotFound(f"no recipe {name!r} in {recipes_dir} (have: {', '.join(known) or 'none'})")
    return path


def link_recipe_folders(recipes_dir: Path, folder: Path) -> None:
    """Make ``base: speaker/synthetic-base.yaml`` in a recipe sent as text resolve from ``folder``
    (the loader reads ``base:`` relative to the including file): link each entry of the recipes
    folder into it."""
    for entry in sorted(recipes_dir.iterdir()) if recipes_dir.is_dir() else ():
        (folder / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())


def check_recipe(recipe: Path, overrides: list[str], *, cwd: Path, timeout: float) -> CheckedRecipe:
    """Validate a recipe in a subprocess: InvalidInput with the loader's message (it names the
    dotted path of an unknown key) when it is wrong."""
    argv = [sys.executable, "-m", "toitsu", "train", str(recipe), *overrides, "--check"]
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"checking the recipe took longer than {timeout:g} s; retry") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.strip().splitlines() if line.strip()]
        starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
        said = lines[starts[-1] :] if starts else lines[-1:]  # the loader lists every problem on its own line
        message = " ".join(said).removeprefix("error: ") or f"exit {done.returncode}"
        raise InvalidInput(f"invalid recipe: {message}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return CheckedRecipe(str(info["kind"]), int(info["steps"]), str(info.get("export_name", "")))


def train_argv(recipe: Path, overrides: list[str], run_dir: Path, processes: int) -> list[str]:
    """``toitsu train`` (under torchrun for several processes); it resumes an existing run folder."""
    tail = ["-m", "toitsu", "train", str(recipe), *overrides, "--run-dir", str(run_dir)]
    if processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *tail]
    return [sys.executable, *tail]


def export_argv(run_dir: Path, models: Path, work: Path, result: Path, name: str) -> list[str]:
    argv = [sys.executable, "-m", "toitsu", "export", str(run_dir), "--models", str(models), "--work", str(work)]
    return [*argv, "--result", str(result), *(["--name", name] if name else [])]


def run_metrics(run_dir: Path) -> dict[str, float]:
    """The numbers of a finished run's evaluation (``run.json``'s ``eval``), flattened to dotted keys."""
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return flatten_numbers(run.get("eval", {}))
