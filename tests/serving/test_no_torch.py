"""DESIGN §1: the gateway never imports torch, checked at run time in a fresh interpreter (every
module imported, transitively). The static layering is import-linter's (``[tool.importlinter]``
in pyproject.toml, run by ``make test`` and by ``tests/test_layering.py``)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import serving
from tests.conftest import REPO


def test_importing_every_serving_module_loads_no_torch():
    modules = [m.name for m in pkgutil.walk_packages(serving.__path__, "serving.")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert len(modules) > 10
    assert result.stdout.strip() == "", f"torch was imported: {result.stdout}"
