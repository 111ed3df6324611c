"""Generated protobuf code is committed; it must be exactly what the .proto files generate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_generated_code_matches_the_proto_files(tmp_path):
    protos = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "protos" / "v1").glob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--plugin=protoc-gen-mypy_grpc={Path(sys.executable).parent / 'protoc-gen-mypy_grpc'}",
            f"--mypy_grpc_out={tmp_path}",
            *protos,
        ],
        cwd=REPO,
        check=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc produced nothing"
    stale = [str(rel) for rel in generated if (REPO / rel).read_bytes() != (tmp_path / rel).read_bytes()]
    assert stale == [], f"regenerate with `make protos`: {stale}"
    committed = sorted(p.relative_to(REPO) for p in (REPO / "protos" / "v1").glob("*_pb2*.py*"))
    assert committed == generated, "generated files without a .proto (or the reverse)"
