"""DESIGN §1's layering as a checked contract: import-linter with the project's own contracts
(``[tool.importlinter]`` in pyproject.toml), and proof that the same tool catches a violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LINT = str(Path(sys.executable).with_name("lint-imports"))


def test_the_tree_keeps_every_layering_contract() -> None:
    result = subprocess.run([LINT], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "5 kept, 0 broken" in result.stdout


def test_a_planted_violation_breaks_the_contract(tmp_path: Path) -> None:
    """export importing serving, in a copy of the tree, is reported with its import line."""
    for name in ("contracts", "protos", "serving", "training", "export", "toitsu", "tests", "bench"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "export" / "planted.py").write_text("from serving.scoring import decide\n")
    result = subprocess.run([LINT], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "export never imports serving BROKEN" in result.stdout and "export.planted" in result.stdout
