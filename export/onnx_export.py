"""Export a torch module to ONNX with dynamic axes.

The TorchScript exporter (``dynamo=False``) is used because it maps ``nn.LSTM`` to one ONNX
LSTM node and traces data-dependent window counts (GE2E's partials) as graph ops; our conv1d
front ends export with either exporter.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

DEFAULT_OPSET = 17


def export_onnx(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``module`` (in eval mode) to ``path`` as a single self-contained ONNX file."""
    import onnx  # the train extra; imported here so that `import export` stays light

    module = module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every shape-to-tensor conversion; those are intended here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example_inputs,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
        )
    onnx.checker.check_model(str(path), full_check=True)
    return path


def export_waveform_model(module: torch.nn.Module, path: Path, sample_rate: int = 16000) -> Path:
    """The waveform contract's graph (``contracts.waveforms``): ``waveform`` [B, T] float32 +
    ``lengths`` [B] int64 → ``embedding`` [B, D], dynamic batch and length; traced on a padded
    batch of 2 s and 1.25 s so that the length masking is exercised."""
    example = torch.randn(2, 2 * sample_rate) * 0.1
    return export_onnx(
        module,
        (example, torch.tensor([2 * sample_rate, 5 * sample_rate // 4])),
        path,
        input_names=["waveform", "lengths"],
        output_names=["embedding"],
        dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}, "embedding": {0: "batch"}},
    )
