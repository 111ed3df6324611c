"""The inference backends under test: embedded ONNX Runtime, and Triton — a real ``tritonserver``
(nvidia-pytriton's, from ``.venv-triton``) serving the python-backend variant of the model pack,
started once per session. A missing Triton environment is an error, never a skip."""

from __future__ import annotations

import pytest

from serving.models.repository import ModelRepository
from tests.conftest import SPEAKER_MODEL


@pytest.fixture(scope="session")
def triton_server(models_dir, tmp_path_factory):
    from export.triton_python_backend import write_triton_repository
    from export.triton_server import LocalTriton

    root = tmp_path_factory.mktemp("triton")
    write_triton_repository(models_dir, root / "repo", variant="python")
    server = LocalTriton(root / "repo", work=root / "work")
    server.start(wait=120)
    yield server
    server.stop()


@pytest.fixture(params=["onnxruntime", pytest.param("triton", marks=pytest.mark.integration)])
def backend_kind(request):
    return request.param


@pytest.fixture
def speaker_model(models_dir):
    return ModelRepository(models_dir).get(SPEAKER_MODEL)


@pytest.fixture
def make_backend(backend_kind, request):
    """A fresh, unloaded backend of the kind under test (closed after the test)."""
    made = []

    def make():
        if backend_kind == "triton":
            from serving.inference.triton_backend import TritonBackend

            backend = TritonBackend(request.getfixturevalue("triton_server").url, timeout_s=30)
        else:
            from serving.inference.onnxruntime_backend import OnnxRuntimeBackend

            backend = OnnxRuntimeBackend(1)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
