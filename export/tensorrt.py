"""TensorRT: a ``model.plan`` built from a version's ``model.onnx``, for GPU deployments.

``build_plan`` parses the ONNX graph with TensorRT's ONNX parser and builds a serialized engine
with one optimisation profile per dynamic input, its min / opt / max shapes taken from the card's
``shape_ranges`` (``profile_shapes``), FP16 where the GPU has fast FP16. The plan is written next
to ``model.onnx`` (``<version>/model.plan``) and served by the ``tensorrt`` variant of the Triton
config (``export/triton_config.py``). A plan is specific to the GPU model and the TensorRT version
that built it, so it is built on the serving host, never shipped.

TensorRT is optional and GPU-only: it is imported lazily, and where the ``tensorrt`` package is
not importable ``build_plan`` raises :class:`TensorRTUnavailable` with a plain message.
``profile_shapes`` needs no TensorRT (the ONNX Runtime TensorRT accelerator uses it too).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.card import AnyCard, load_card

PLAN_FILE = "model.plan"
Shape = tuple[int, ...]
# Names of the dynamic non-batch axes in ``shape_ranges``, by input role and axis.
_AXIS_NAMES = {("waveform", 1): "samples", ("image", 2): "height", ("image", 3): "width"}


class TensorRTUnavailable(RuntimeError):
    """TensorRT is not installed (or has no GPU) on this host."""


@dataclass(frozen=True)
class PlanResult:
    path: Path
    tensorrt_version: str
    fp16: bool
    profile: dict[str, tuple[Shape, Shape, Shape]]


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def profile_shapes(card: AnyCard) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Per input, (min, opt, max) full shapes from the card's ``shape_ranges``.

    Axis 0 of a batched model is ``batch`` (capped at ``serving.max_batch_size``); other dynamic
    axes are named by role (a waveform's axis 1 is ``samples``). A dynamic axis without a range is
    an error: TensorRT needs bounds, and a server never guesses them.
    """
    ranges = card.shape_ranges.model_dump(exclude_none=True) if card.shape_ranges else {}
    max_batch = card.serving.max_batch_size
    profile: dict[str, tuple[Shape, Shape, Shape]] = {}
    for spec in card.inputs:
        dims: list[tuple[int, int, int]] = []
        for axis, size in enumerate(spec.shape):
            if size != -1:
                dims.append((size, size, size))
                continue
            axis_name = "batch" if axis == 0 and max_batch > 0 else _AXIS_NAMES.get((spec.role, axis))
            if axis_name is None or axis_name not in ranges:
                raise ValueError(
                    f"{card.name}: input {spec.name!r} axis {axis} is dynamic but the card's "
                    f"shape_ranges has no {axis_name or 'name for it'!r} range"
                )
            low, opt, high = (int(ranges[axis_name][k]) for k in ("min", "opt", "max"))
            if axis_name == "batch":
                high = min(high, max_batch)
                low, opt = min(low, high), min(opt, high)
            if not 0 < low <= opt <= high:
                raise ValueError(f"{card.name}: shape range {axis_name!r} must satisfy 0 < min <= opt <= max")
            dims.append((low, opt, high))
        mins, opts, maxs = (tuple(d[i] for d in dims) for i in range(3))
        profile[spec.name] = (mins, opts, maxs)
    return profile


def build_plan(
    version_dir: Path, card: AnyCard | None = None, *, fp16: bool = True, workspace_bytes: int = 4 << 30
) -> PlanResult:
    """Build ``<version_dir>/model.plan`` from its ``model.onnx``; written atomically."""
    if not tensorrt_available():
        raise TensorRTUnavailable(
            "TensorRT is not installed on this host (the Python package `tensorrt` is not importable), so no "
            "model.plan can be built. Build plans on the GPU host that will serve them (`pip install tensorrt`), "
            "or serve model.onnx through ONNX Runtime's TensorRT accelerator (Triton config variant "
            "`onnxruntime`, kind KIND_GPU, tensorrt_fp16)."
        )
    import tensorrt as trt

    version_dir = Path(version_dir)
    card = card or load_card(version_dir)
    profile = profile_shapes(card)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = _parse_onnx(trt, builder, logger, version_dir / card.file)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    use_fp16 = fp16 and builder.platform_has_fast_fp16
    if use_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    optimisation = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if tensor.name not in profile:
            raise ValueError(f"the ONNX graph has input {tensor.name!r}, which the card does not declare")
        if tensor.is_shape_tensor:
            raise ValueError(
                f"input {tensor.name!r} is a TensorRT shape tensor; the card's shape ranges cannot bound its values"
            )
        optimisation.set_shape(tensor.name, *profile[tensor.name])
    config.add_optimization_profile(optimisation)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build an engine for {version_dir} (see the TensorRT log above)")
    path = version_dir / PLAN_FILE
    tmp = path.with_name(f".{PLAN_FILE}.{os.getpid()}.tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, path)
    return PlanResult(path, trt.__version__, use_fp16, profile)


def build_plan_for_version(version_dir: Path, **options: Any) -> Path:
    """``build_plan`` with the version's own card (what ``toitsu export --format tensorrt`` calls)."""
    return build_plan(Path(version_dir), **options).path


def _parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: Path) -> Any:
    major = int(trt.__version__.split(".")[0])
    # TensorRT 10 networks are always explicit-batch; older releases need the flag.
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    return network
