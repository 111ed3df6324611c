"""The committed landmark table of the face sources (``training/data/face_source_points.py``) is
what its script measures with the served predictor now: re-run it and compare."""

from __future__ import annotations

import importlib.util

import numpy as np

from tests.conftest import REPO
from training.data.face_render import face_sources, source_points

# The table keeps 2 decimals; a re-run on the same models gives the same medians of whole-pixel
# predictions, so it may differ only by a last-digit rounding flip where float arithmetic lands
# on the boundary (another CPU's ONNX Runtime): 0.01 px, a thousandth of an eye's width.
TOLERANCE = 0.011


def _script():
    spec = importlib.util.spec_from_file_location("face_source_points", REPO / "scripts" / "face_source_points.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_table_is_what_the_served_predictor_finds(models_dir):
    measured = _script().measure(models_dir)
    names = [name for name, _ in face_sources()]
    assert list(measured) == names
    worst = max(np.abs(measured[n] - source_points(n)).max() for n in names)
    assert worst <= TOLERANCE, f"the table is {worst:.3f} px off: rerun scripts/face_source_points.py"


def test_the_points_are_dlibs_five_in_dlibs_order():
    for name, source in face_sources():
        p = source_points(name)
        assert p.shape == (5, 2) and ((p >= 0) & (p < source.shape[0])).all(), name
        # image-right eye (outer, inner) right of the image-left eye (inner, outer); nose below the eyes
        assert p[0, 0] > p[1, 0] > p[3, 0] > p[2, 0], name
        assert p[4, 1] > p[:4, 1].max() and p[2, 0] < p[4, 0] < p[0, 0], name
