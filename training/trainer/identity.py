"""What the trainer records about the recipe it runs: two hashes and the resolved text.

The trainer does not read or write recipe formats: its caller hands it a ``RunIdentity``
(``training.recipes.config.run_identity`` builds one from a recipe dataclass). The trainer puts
both hashes in every checkpoint, refuses to resume a checkpoint whose ``resume_hash`` differs
(unless forced), and writes ``text`` to ``run_dir/recipe.yaml`` under a header naming the hashes.

A run without a recipe (tests, benchmarks that drive the trainer directly) gets
``config_identity``: its ``TrainerConfig`` alone, hashed field by field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml

from training.trainer.config import RESUME_SAFE, TrainerConfig


@dataclass(frozen=True)
class RunIdentity:
    """recipe_hash: provenance, every field of the resolved recipe; resume_hash: what a resuming
    run must match (the fields not marked ``RESUME_SAFE``); text: the resolved recipe (YAML)."""

    recipe_hash: str
    resume_hash: str
    text: str

    def header(self) -> str:
        """The ``#`` comment lines ``run_dir/recipe.yaml`` starts with."""
        return f"# recipe_hash: {self.recipe_hash}\n# resume_hash: {self.resume_hash}\n"


def _sha256(plain: dict[str, Any]) -> str:
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_identity(config: TrainerConfig) -> RunIdentity:
    """The identity of a run whose whole recipe is ``config`` (every field is a plain scalar)."""
    fields = dataclasses.fields(config)
    plain = {f.name: getattr(config, f.name) for f in fields}
    resumable = {f.name: plain[f.name] for f in fields if not f.metadata.get(RESUME_SAFE)}
    return RunIdentity(
        recipe_hash=_sha256(plain), resume_hash=_sha256(resumable), text=yaml.safe_dump(plain, sort_keys=False)
    )
