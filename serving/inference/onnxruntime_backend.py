"""The embedded backend: ONNX Runtime sessions inside the gateway process (the default)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import onnxruntime as ort

from contracts.card import CardError
from serving.errors import InvalidInput, Unavailable
from serving.models.repository import ModelVersion

_NP_DTYPES = {"float32": np.float32, "int64": np.int64, "int32": np.int32, "uint8": np.uint8, "float16": np.float16}


class OnnxRuntimeBackend:
    """One CPU session per loaded model. ``run`` is thread-safe in ORT, so no lock on the hot path."""

    def __init__(self, intra_op_threads: int = 0) -> None:
        self._threads = intra_op_threads
        self._sessions: dict[str, tuple[ort.InferenceSession, ModelVersion]] = {}
        self._lock = threading.Lock()

    def load(self, key: str, model: ModelVersion) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        # ORT's idle intra-op threads spin by default; beside the gRPC threads' VAD and decoding
        # on a small host that burns the very cores they need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(model.model_path), options, providers=["CPUExecutionProvider"])
        graph_inputs = {i.name for i in session.get_inputs()}
        graph_outputs = {o.name for o in session.get_outputs()}
        declared = {t.name for t in model.card.inputs}
        if declared != graph_inputs or model.card.embedding_output not in graph_outputs:
            raise CardError(
                f"{model.directory}: card declares inputs {sorted(declared)} / output "
                f"{model.card.embedding_output!r}, graph has {sorted(graph_inputs)} / {sorted(graph_outputs)}"
            )
        with self._lock:
            self._sessions[key] = (session, model)

    def ready(self, key: str) -> bool:
        return key in self._sessions

    def embed(self, key: str, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        try:
            session, model = self._sessions[key]
        except KeyError:
            raise Unavailable(f"model {key!r} is not loaded") from None
        feeds = {}
        for spec in model.card.inputs:
            if spec.name not in inputs:
                raise InvalidInput(f"missing input {spec.name!r} for model {key!r}")
            array = np.asarray(inputs[spec.name])
            if array.dtype != _NP_DTYPES[spec.dtype] or array.ndim != len(spec.shape):
                raise InvalidInput(
                    f"input {spec.name!r} must be {spec.dtype} with {len(spec.shape)} dims, "
                    f"got {array.dtype} with shape {array.shape}"
                )
            feeds[spec.name] = array
        (output,) = session.run([model.card.embedding_output], feeds)
        return output

    def close(self) -> None:
        with self._lock:
            self._sessions.clear()
