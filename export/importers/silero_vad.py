"""Silero VAD (MIT) → the model repository, as the "sequence" ONNX file its wheel ships.

``silero_vad_16k_sequence.onnx`` computes the same per-frame probabilities as the streaming
``silero_vad.onnx``, bit for bit, but for a whole block of frames per call (the LSTM state in and
out once per block), so the gateway's VAD makes one ONNX call per clip instead of one per 32 ms.

The file is copied byte for byte (its sha256 is recorded in the card and checked against the
package's copy), so parity with the package's own ONNX inference is identity; the gateway's
numpy framing and its port of ``get_speech_timestamps`` are checked in ``tests/serving/audio``
against the package, both its streaming and its sequence path.
"""

from __future__ import annotations

import importlib.util
import shutil
from importlib import metadata
from pathlib import Path

from export.card import new_card, sha256_file, tensor

NAME = "silero-vad"
LICENSE = "MIT"
SOURCE = "silero_vad/data/silero_vad_16k_sequence.onnx"
# Frames per call: the package's default block (sequence_vad.DEFAULT_MAX_FRAMES, 16.4 s) and
# serving.audio.vad.MAX_FRAMES. A hint on the card; the graph takes any number of frames.
FRAMES_PER_CALL = 512
_DTYPES = {1: "float32", 7: "int64"}


def source_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("silero-vad is needed to import its model: pip install 'toitsu[models]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / Path(SOURCE).name


def _tensors(values, role: str) -> list[dict]:
    specs = []
    for value in values:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
        specs.append(tensor(value.name, _DTYPES.get(value.type.tensor_type.elem_type, "float32"), dims, role))
    return specs


def stage(version_dir: Path, version: int) -> dict:
    """Copy the ONNX file into ``version_dir`` and return its card."""
    import onnx

    source = source_path()
    target = version_dir / "model.onnx"
    shutil.copyfile(source, target)
    if sha256_file(target) != sha256_file(source):
        raise OSError(f"copy of {source} is corrupt")
    graph = onnx.load(str(target)).graph
    return new_card(
        NAME,
        version,
        "vad",
        description="Silero VAD v6, sequence form: speech probability per 32 ms frame (512 "
        "samples at 16 kHz, each with the previous 64 samples as context), for a block of "
        "frames [frames, 576] per call; the LSTM state (h, c) is carried between blocks.",
        inputs=_tensors(graph.input, "vad-input"),
        outputs=_tensors(graph.output, "vad-output"),
        audio={"sample_rate": 16000, "channels": 1, "chunk_samples": 512, "context_samples": 64,
               "frames_per_call": FRAMES_PER_CALL},
        provenance={
            "kind": "import",
            "package": "silero-vad",
            "package_version": metadata.version("silero-vad"),
            "license": LICENSE,
            "source_file": SOURCE,
            "source_sha256": sha256_file(source),
        },
        parity={"checks": [{"check": "file", "cases": 1, "identical_sha256": True}]},
    )
