"""Activation tests: a model repository holding the default pack plus further versions.

- ``resemblyzer-ge2e`` v2, ``dlib-resnet-v1`` v2, ``toitsu-sound-formula`` v2: the v1 graph under
  a card saying version 2 (same scores, another binding);
- ``resemblyzer-proj192`` v1: the Resemblyzer graph followed by a fixed random projection to 192
  dimensions and L2 normalisation (another embedding size, still telling speakers apart), built
  with the ``onnx`` package, so that no test trains a model of its own.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from serving.config import load_config
from serving.server import Gateway

PROJECTED = "resemblyzer-proj192"


def _version_copy(repo: Path, name: str, version: int, **card_changes) -> Path:
    src = repo / name / "1"
    dst = repo / name / str(version)
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name != "card.json":
            os.symlink(item.resolve(), dst / item.name)
    card = json.loads((src / "card.json").read_text())
    (dst / "card.json").write_text(json.dumps({**card, "version": version, **card_changes}))
    return dst


def _projected(repo: Path, source: Path, dim: int) -> None:
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source / "model.onnx"))
    graph = model.graph
    out = graph.output[0]
    for node in graph.node:
        node.output[:] = ["emb_full" if o == out.name else o for o in node.output]
    weights = (np.random.default_rng(192).standard_normal((256, dim)) / np.sqrt(dim)).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(weights, "proj_w"))
    graph.node.append(helper.make_node("MatMul", ["emb_full", "proj_w"], ["emb_proj"]))
    graph.node.append(helper.make_node("LpNormalization", ["emb_proj"], [out.name], axis=1, p=2))
    out.type.tensor_type.shape.dim[1].dim_value = dim
    folder = repo / PROJECTED / "1"
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    card = json.loads((source / "card.json").read_text())
    card["name"], card["version"] = PROJECTED, 1
    card["outputs"][0]["shape"] = [-1, dim]
    card["embedding"]["dim"] = dim
    card["description"] = f"test: resemblyzer-ge2e v1 projected to {dim} dimensions"
    card.pop("cohort", None), card.pop("calibration_as_norm", None)  # GE2E's cohort is 256-d: cosine here
    (folder / "card.json").write_text(json.dumps(card))


@pytest.fixture(scope="session")
def model_repo(models_dir, tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("models")
    for entry in models_dir.iterdir():
        if entry.name in ("resemblyzer-ge2e", "dlib-resnet-v1", "toitsu-sound-formula"):
            (repo / entry.name).mkdir()
            os.symlink((entry / "1").resolve(), repo / entry.name / "1")
        elif entry.is_dir() and not entry.name.startswith("."):
            os.symlink(entry.resolve(), repo / entry.name)
    for name in ("resemblyzer-ge2e", "dlib-resnet-v1", "toitsu-sound-formula"):
        _version_copy(repo, name, 2)
    _projected(repo, models_dir / "resemblyzer-ge2e" / "1", 192)
    return repo


def gateway_config(repo: Path, var: Path, *modalities: str, **overrides: str):
    values = {
        "server.port": "0",
        "server.metrics_port": "0",
        "server.health_interval_seconds": "0",
        "paths.models": str(repo),
        "paths.var": str(var),
        **{f"{m}.enabled": str(m in modalities).lower() for m in ("speaker", "sound", "face")},
        **{f"{m}.version": "1" for m in modalities},  # the repository's newest is 2
        "speaker.model": "resemblyzer-ge2e",  # the versions above are of GE2E (the default is CAM++)
        **overrides,
    }
    return load_config(overrides=values)


def start_gateway(repo: Path, var: Path, *modalities: str, **overrides: str) -> Gateway:
    gateway = Gateway(gateway_config(repo, var, *modalities, **overrides))
    gateway.start(background_load=False)
    assert gateway.wait_loaded(60), gateway._errors
    return gateway


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
