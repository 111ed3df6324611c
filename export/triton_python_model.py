"""``model.py`` for Triton's python backend: one Toitsu model version, its ``model.onnx`` run by ONNX
Runtime (CPU) inside Triton, for Triton installs that have only the python backend.

``export/triton_python_backend.py`` copies this file verbatim to ``<name>/<version>/model.py`` of
a generated Triton repository; do not edit the copy. It reads only its ``config.pbtxt`` (rendered
from the typed card by ``export/triton_config.py``): the inputs and outputs, and the parameters
``model_file``, ``waveform_input`` / ``lengths_input`` (the tensors of those roles, if any),
``intra_op_threads`` (ONNX Runtime threads per call, 0 = its default) and ``max_padding``.

Batching. Triton's dynamic batcher hands ``execute`` several requests at once. For models with a
``lengths`` input, the config allows ragged batches of the waveform input, so requests of
different lengths arrive together: they are sorted by length, cut into groups whose zero padding
stays within ``max_padding`` × the samples they carry (the gateway's micro-batcher follows the same
rule), and each group runs as one ONNX Runtime call with every row's ``lengths`` unchanged — the
graph masks samples past ``lengths``, so padding never changes an embedding. Other models'
requests are concatenated when their shapes agree and run alone otherwise. Outputs are split back
by request; a malformed request gets its own error and the others still run.

Runs inside Triton's stub interpreter (the Triton environment: numpy < 2, onnxruntime), so it uses
nothing from Toitsu; the pure functions below are unit-tested outside Triton.
"""

from __future__ import annotations

import json
import os

import numpy as np

try:  # only inside Triton's python backend
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - unit tests of the batching helpers
    pb_utils = None

_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "uint8": np.uint8}
_CONFIG_DTYPES = {
    "TYPE_FP32": np.float32,
    "TYPE_FP16": np.float16,
    "TYPE_INT64": np.int64,
    "TYPE_INT32": np.int32,
    "TYPE_UINT8": np.uint8,
}


class RequestError(ValueError):
    """One request is malformed; only that request fails."""


def check_request(feeds: dict[str, np.ndarray], waveform: str | None, lengths: str | None) -> int:
    """Rows of one request's inputs; they must agree, and ``lengths`` must fit the waveform."""
    rows = {name: (array.shape[0] if array.ndim else 1) for name, array in feeds.items()}
    if len(set(rows.values())) != 1:
        raise RequestError(f"inputs disagree on the batch size: {rows}")
    if waveform and lengths:
        wave, valid = feeds[waveform], feeds[lengths].reshape(-1)
        if wave.ndim != 2 or np.any(valid < 1) or np.any(valid > wave.shape[1]):
            raise RequestError(
                f"{lengths!r} must be in [1, {wave.shape[-1]}] (the padded length), got {valid.tolist()}"
            )
    return next(iter(rows.values()))


def plan_groups(feeds: list[dict[str, np.ndarray]], waveform: str | None, max_padding: float) -> list[list[int]]:
    """Indices of requests that run together.

    With a paddable waveform input: sorted by length, a request joins the current group while the
    group padded to its longest row stays within ``max_padding`` × the real (request-padded)
    samples. Otherwise requests with equal non-batch shapes share a group.
    """
    if waveform is None:
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(feeds):
            groups.setdefault(tuple((k, v.shape[1:]) for k, v in sorted(request.items())), []).append(index)
        return list(groups.values())
    order = sorted(range(len(feeds)), key=lambda i: feeds[i][waveform].shape[1])
    planned: list[list[int]] = []
    real = rows = 0
    for index in order:
        length, count = feeds[index][waveform].shape[1], feeds[index][waveform].shape[0]
        if planned and length * (rows + count) <= max_padding * (real + length * count):
            planned[-1].append(index)
            real, rows = real + length * count, rows + count
        else:
            planned.append([index])
            real, rows = length * count, count
    return planned


def merge(feeds: list[dict[str, np.ndarray]], waveform: str | None) -> dict[str, np.ndarray]:
    """One batch from several requests: waveforms zero-padded to the longest, then concatenated."""
    merged = {}
    for name in feeds[0]:
        arrays = [request[name] for request in feeds]
        if name == waveform:
            longest = max(a.shape[1] for a in arrays)
            arrays = [np.pad(a, ((0, 0), (0, longest - a.shape[1]))) if a.shape[1] < longest else a for a in arrays]
        merged[name] = np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
    return merged


def split_rows(output: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    return np.split(output, np.cumsum(counts)[:-1], axis=0)


class TritonPythonModel:
    """Triton's python-backend interface: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: dict) -> None:
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        params = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads") or 0)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            os.path.join(version_dir, params.get("model_file") or "model.onnx"),
            options,
            providers=["CPUExecutionProvider"],
        )
        self.inputs = {t["name"]: _CONFIG_DTYPES[t["data_type"]] for t in config["input"]}
        self.lengths = params.get("lengths_input") or None
        self.waveform = (params.get("waveform_input") or None) if self.lengths else None
        self.outputs = [(o["name"], _CONFIG_DTYPES[o["data_type"]]) for o in config["output"]]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.max_padding = float(params.get("max_padding") or 1.5)

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        feeds, counts, good = [], [], []
        for index, request in enumerate(requests):
            try:
                request_feeds = {name: self._input(request, name) for name in self.inputs}
                counts.append(check_request(request_feeds, self.waveform, self.lengths) if self.batched else 0)
                feeds.append(request_feeds)
                good.append(index)
            except RequestError as exc:
                responses[index] = _error(str(exc), invalid=True)
        if not self.batched:
            for position, index in enumerate(good):
                responses[index] = self._run([feeds[position]], [0])[0]
            return responses
        for group in plan_groups(feeds, self.waveform, self.max_padding):
            results = self._run([feeds[p] for p in group], [counts[p] for p in group])
            for position, response in zip(group, results):
                responses[good[position]] = response
        return responses

    def finalize(self) -> None:
        self.session = None

    def _input(self, request, name: str) -> np.ndarray:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            raise RequestError(f"missing input {name!r}")
        array = tensor.as_numpy()
        if array.dtype != self.inputs[name]:
            raise RequestError(f"input {name!r} must be {np.dtype(self.inputs[name]).name}, got {array.dtype}")
        return array

    def _run(self, group: list[dict[str, np.ndarray]], counts: list[int]) -> list:
        """One ONNX Runtime call for the group; one response (or the same error) per request."""
        try:
            batch = merge(group, self.waveform) if self.batched else group[0]
            values = self.session.run([name for name, _ in self.outputs], batch)
        except Exception as exc:  # every request of the group gets the error; the model lives on
            return [_error(f"ONNX Runtime failed: {exc}", invalid=False)] * len(group)
        if not self.batched:
            return [
                pb_utils.InferenceResponse(
                    [
                        pb_utils.Tensor(n, np.ascontiguousarray(v.astype(t, copy=False)))
                        for (n, t), v in zip(self.outputs, values)
                    ]
                )
            ]
        per_output = [split_rows(v, counts) for v in values]
        return [
            pb_utils.InferenceResponse(
                [
                    pb_utils.Tensor(n, np.ascontiguousarray(parts[i].astype(t, copy=False)))
                    for (n, t), parts in zip(self.outputs, per_output)
                ]
            )
            for i in range(len(group))
        ]


def _error(message: str, invalid: bool):
    error_type = pb_utils.TritonError
    code = getattr(error_type, "INVALID_ARG" if invalid else "INTERNAL", None)
    error = error_type(message, code) if code is not None else error_type(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)
