"""Silero VAD (MIT) → the model repository.

Source: ``silero_vad_16k_sequence.onnx`` from the silero-vad wheel, which computes the streaming
``silero_vad.onnx``'s per-frame probabilities bit for bit but for a whole block of frames per
call. Its weights are re-expressed as batched matrix products (``training/models/silero_vad.py``,
about 3× less CPU, which is most of what the gateway spends per request besides the speaker
model) and exported with the same inputs and outputs; the export is accepted only if it matches
the original graph (probabilities ≤ 1e-4 apart, state cosine ≥ 0.99999) on noise, tones and speech-like
signals, across block boundaries. The gateway's framing and its port of
``get_speech_timestamps`` are checked against the package itself in ``tests/serving/audio``.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np

from contracts.card import VadCard
from contracts.card_sections import DType, ImportProvenance, TensorSpec, VadAudioSpec, tensor
from contracts.card_sections import Parity as ParitySection
from export.card import sha256_file
from export.parity import Parity, compare, onnx_session, require

NAME = "silero-vad"
LICENSE = "MIT"
SOURCE = "silero_vad/data/silero_vad_16k_sequence.onnx"
# Frames per call: the package's default block (sequence_vad.DEFAULT_MAX_FRAMES, 16.4 s) and
# serving.audio.vad.MAX_FRAMES. A hint on the card; the graph takes any number of frames.
FRAMES_PER_CALL = 512


def source_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("silero-vad is needed to import its model: pip install 'toitsu[models]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / Path(SOURCE).name


def load_module():
    """The torch re-expression holding the wheel's weights."""
    import onnx
    from onnx import numpy_helper

    from training.models.silero_vad import SileroVadSequence

    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(source_path())).graph.initializer}
    return SileroVadSequence(weights).eval()


def export_graph(path: Path) -> Path:
    import torch

    from export.onnx_export import export_onnx

    state = torch.zeros(1, 1, 128)
    return export_onnx(
        load_module(),
        (torch.randn(8, 576) * 0.1, state, state),
        path,
        input_names=["input", "h", "c"],
        output_names=["speech_probs", "hn", "cn"],
        dynamic_axes={"input": {0: "frames"}, "speech_probs": {0: "frames"}},
    )


def _test_blocks(rng: np.random.Generator) -> list[np.ndarray]:
    """Frames [n, 576] of real speech (the wheels' recordings), noise, a tone and silence."""
    from export.importers.real_speech import load_real_speech

    t = np.arange(200 * 512) / 16000
    speech = [x for x, rate in load_real_speech().values() if rate == 16000]
    signals = [*speech, rng.standard_normal(300 * 512) * 0.05, 0.3 * np.sin(2 * np.pi * 440 * t), np.zeros(40 * 512)]
    blocks = []
    for x in signals:
        padded = np.concatenate([np.zeros(64), x]).astype(np.float32)
        blocks.append(np.lib.stride_tricks.sliding_window_view(padded, 576)[::512].copy())
    return blocks


def measure_parity(candidate: Path) -> list[Parity]:
    """The exported graph against the wheel's, block by block with the state carried across."""
    original, ours = onnx_session(source_path(), threads=1), onnx_session(candidate, threads=1)
    probs, states = [], []
    for frames in _test_blocks(np.random.default_rng(0)):
        h_a = c_a = h_b = c_b = np.zeros((1, 1, 128), np.float32)
        for start in range(0, len(frames), 97):  # odd block size: state crosses many boundaries
            block = frames[start : start + 97]
            p_a, h_a, c_a = original.run(None, {"input": block, "h": h_a, "c": c_a})
            p_b, h_b, c_b = ours.run(None, {"input": block, "h": h_b, "c": c_b})
            probs.append((p_a.reshape(1, -1), p_b.reshape(1, -1)))
            states.append((np.concatenate([h_a, c_a]).reshape(1, -1), np.concatenate([h_b, c_b]).reshape(1, -1)))
    return [
        require(compare("probabilities", probs), max_abs_diff=1e-4),
        # The LSTM cell state is unbounded (|c| reaches ~100 on tones): judge it by direction.
        require(compare("state", states), min_cosine=0.99999),
    ]


def _tensors(values, role: str) -> list[TensorSpec]:
    dtypes: dict[int, DType] = {1: "float32", 7: "int64"}  # onnx.TensorProto's FLOAT, INT64
    return [
        tensor(
            v.name,
            dtypes.get(v.type.tensor_type.elem_type, "float32"),
            [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim],
            role,
        )
        for v in values
    ]


def stage(version_dir: Path, version: int) -> VadCard:
    """Export into ``version_dir``, check parity, and return the card."""
    import onnx

    target = export_graph(version_dir / "model.onnx")
    parity = measure_parity(target)
    graph = onnx.load(str(target)).graph
    return VadCard(
        name=NAME,
        version=version,
        description="Silero VAD v6, sequence form: speech probability per 32 ms frame (512 samples at "
        "16 kHz after 64 samples of context), LSTM state in and out once per block of frames; "
        "convolutions re-expressed as batched matrix products (same weights).",
        inputs=_tensors(graph.input, "vad-input"),
        outputs=_tensors(graph.output, "vad-output"),
        audio=VadAudioSpec(
            sample_rate=16000,
            channels=1,
            chunk_samples=512,
            context_samples=64,
            frames_per_call=FRAMES_PER_CALL,
        ),
        provenance=ImportProvenance(
            package="silero-vad",
            package_version=metadata.version("silero-vad"),
            license=LICENSE,
            source_file=SOURCE,
            source_sha256=sha256_file(source_path()),
        ),
        parity=ParitySection(reference=SOURCE, checks=[p.card_check() for p in parity]),
    )
