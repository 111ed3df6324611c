"""The Triton backend: model versions served by an NVIDIA Triton Inference Server, over gRPC.

Same interface as the embedded backend (``serving/inference/backend.py``); the gateway's pipeline,
micro-batcher and gallery do not know which one runs a model. ``tritonclient.grpc`` is imported
lazily (the ``triton`` extra). Its synchronous client is thread-safe: the micro-batcher's workers
(``batching.workers``) are the thread pool that keeps several requests in flight, and Triton's
dynamic batcher joins them.

- ``load`` checks that Triton has the card's version ready and that its config agrees with the
  card (input names and types, the embedding output, batching): a mismatch is a CardError, a
  Triton that cannot be reached is ``Unavailable`` (the gateway retries loading, NOT_SERVING).
- ``ready`` asks Triton whether the model version is ready (the gateway polls it into health).
- ``embed`` validates inputs as the embedded backend does, then sends one request with a deadline
  (``timeout_seconds``). Only UNAVAILABLE is retried (the request never reached a model, or Triton
  went away mid-call; an embedding is a pure function, so a repeat is harmless), a few times with
  backoff inside the same deadline. Triton's errors map onto the gateway's: UNAVAILABLE / NOT_FOUND
  / INTERNAL → Unavailable, DEADLINE_EXCEEDED → DeadlineExceeded, INVALID_ARGUMENT → InvalidInput,
  RESOURCE_EXHAUSTED → Overloaded. A restarted Triton is reconnected to by gRPC within
  ``reconnect_backoff_ms``, so the gateway recovers without a restart.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.card import CardError
from serving.config import ConfigError
from serving.errors import DeadlineExceeded, InvalidInput, Overloaded, ToitsuError, Unavailable
from serving.models.repository import ModelVersion

_NP_DTYPES = {"float32": np.float32, "int64": np.int64, "int32": np.int32, "uint8": np.uint8, "float16": np.float16}
_WIRE_DTYPES = {"float32": "FP32", "int64": "INT64", "int32": "INT32", "uint8": "UINT8", "float16": "FP16"}
_INT32_MAX = 2**31 - 1


def _tritonclient() -> tuple[Any, type[Exception]]:
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "the Triton backend needs tritonclient: install the `triton` extra "
            "(pip install 'toitsu[triton]', or `make venv`)"
        ) from exc
    return grpcclient, InferenceServerException


@dataclass(frozen=True)
class _Served:
    model: ModelVersion
    name: str
    version: str
    expand: frozenset[str]  # inputs declared dims [1] + reshape []: sent as [B, 1]
    max_batch: int  # Triton's max_batch_size (0: no batching); larger batches are sent in parts


class TritonBackend:
    """Models run by the Triton server at ``url``; keys map to (card name, card version)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        probe_timeout_s: float = 2.0,
        retries: int = 2,
        retry_backoff_s: float = 0.05,
        reconnect_backoff_ms: int = 500,
        ssl: bool = False,
        root_certificates: str | None = None,
        certificate_chain: str | None = None,
        private_key: str | None = None,
        client: Any = None,
    ) -> None:
        """``ssl``: TLS to Triton, checked against ``root_certificates`` (a PEM file; None: gRPC's
        default roots); ``certificate_chain`` + ``private_key`` (PEM files): the client certificate
        for a Triton that requires mutual TLS. An unreadable file is a ConfigError, at once."""
        grpcclient, self._error_type = _tritonclient()
        self.url, self._timeout, self._probe = url, timeout_s, probe_timeout_s
        self._retries, self._backoff = max(0, retries), retry_backoff_s
        channel_args = [
            ("grpc.max_send_message_length", _INT32_MAX),
            ("grpc.max_receive_message_length", _INT32_MAX),
            ("grpc.initial_reconnect_backoff_ms", min(100, reconnect_backoff_ms)),
            ("grpc.min_reconnect_backoff_ms", min(100, reconnect_backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", reconnect_backoff_ms),
        ]
        self._grpc = grpcclient
        tls_files = {"root_certificates": root_certificates, "certificate_chain": certificate_chain}
        tls_files["private_key"] = private_key
        for name, path in tls_files.items():
            if path and not os.access(path, os.R_OK):
                raise ConfigError(f"triton.{name}: cannot read {path}")
        self._client = client or grpcclient.InferenceServerClient(
            url, ssl=ssl, **{k: v or None for k, v in tls_files.items()}, channel_args=channel_args
        )
        self._served: dict[str, _Served] = {}
        self._lock = threading.Lock()

    # -- the InferenceBackend interface ------------------------------------------------------
    def load(self, key: str, model: ModelVersion) -> None:
        name, version = model.card.name, str(model.card.version)
        try:
            if not self._client.is_model_ready(name, version, client_timeout=self._probe):
                raise Unavailable(
                    f"Triton at {self.url} has no ready version {version} of {name!r} (is it in Triton's "
                    "model repository, and does its version_policy serve that version?)"
                )
            config = self._client.get_model_config(name, version, as_json=True, client_timeout=self._probe)["config"]
        except self._error_type as exc:
            raise self._translate(exc, f"{name} v{version}") from None
        expand = _check_config(model, config)
        with self._lock:
            self._served[key] = _Served(model, name, version, expand, int(config.get("max_batch_size", 0)))

    def ready(self, key: str) -> bool:
        served = self._served.get(key)
        if served is None:
            return False
        try:
            return bool(self._client.is_model_ready(served.name, served.version, client_timeout=self._probe))
        except Exception:  # noqa: BLE001 - unreachable, or the client closed during shutdown: not ready
            return False

    def embed(self, key: str, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        served = self._served.get(key)
        if served is None:
            raise Unavailable(f"model {key!r} is not loaded")
        arrays = self._validate(served, inputs)
        rows = len(next(iter(arrays.values())))
        step = served.max_batch or rows
        parts = [
            self._embed_part(served, {k: v[start : start + step] for k, v in arrays.items()})
            for start in range(0, rows, step)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        with self._lock:
            self._served.clear()
        self._client.close()

    # -- internals ----------------------------------------------------------------------------
    def _validate(self, served: _Served, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = {}
        for spec in served.model.card.inputs:
            if spec.name not in inputs:
                raise InvalidInput(f"missing input {spec.name!r} for model {served.name!r}")
            array = np.asarray(inputs[spec.name])
            if array.dtype != _NP_DTYPES[spec.dtype] or array.ndim != len(spec.shape):
                raise InvalidInput(
                    f"input {spec.name!r} must be {spec.dtype} with {len(spec.shape)} dims, "
                    f"got {array.dtype} with shape {array.shape}"
                )
            arrays[spec.name] = array
        if served.max_batch and len({a.shape[0] for a in arrays.values()}) != 1:
            raise InvalidInput(
                f"inputs of {served.name!r} disagree on the batch size: { {k: a.shape for k, a in arrays.items()} }"
            )
        return arrays

    def _embed_part(self, served: _Served, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        request = []
        for spec in served.model.card.inputs:
            array = arrays[spec.name][:, None] if spec.name in served.expand else arrays[spec.name]
            tensor = self._grpc.InferInput(spec.name, list(array.shape), _WIRE_DTYPES[spec.dtype])
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            request.append(tensor)
        output = served.model.card.embedding_output
        result = self._infer(served, request, [self._grpc.InferRequestedOutput(output)])
        array = result.as_numpy(output)
        rows = len(next(iter(arrays.values())))
        if array is None or array.ndim != 2 or array.shape[0] != rows:
            raise Unavailable(
                f"Triton returned {None if array is None else array.shape} for {output!r} of "
                f"{served.name} v{served.version}, expected [{rows}, {served.model.card.embedding_dim}]"
            )
        return array.astype(np.float32, copy=False)

    def _infer(self, served: _Served, request: list, outputs: list) -> Any:
        deadline = time.monotonic() + self._timeout
        what = f"{served.name} v{served.version}"
        for attempt in range(self._retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"Triton at {self.url} did not answer for {what} within {self._timeout:g} s")
            try:
                return self._client.infer(
                    served.name, request, model_version=served.version, outputs=outputs, client_timeout=remaining
                )
            except self._error_type as exc:
                pause = self._backoff * (2**attempt)
                if _status(exc) != "UNAVAILABLE" or attempt == self._retries or time.monotonic() + pause >= deadline:
                    raise self._translate(exc, what) from None
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, exc: Exception, what: str) -> ToitsuError:
        status, message = _status(exc), _message(exc)
        if status == "DEADLINE_EXCEEDED":
            return DeadlineExceeded(f"Triton at {self.url} did not answer for {what} in time: {message}")
        if status == "INVALID_ARGUMENT":
            return InvalidInput(f"Triton refused the input for {what}: {message}")
        if status == "RESOURCE_EXHAUSTED":
            return Overloaded(f"Triton at {self.url} is overloaded ({what}): {message}")
        if status == "UNAVAILABLE":
            return Unavailable(f"Triton at {self.url} is unavailable for {what}: {message}")
        return Unavailable(f"Triton at {self.url} failed on {what} ({status or 'unknown status'}): {message}")


def _status(exc: Exception) -> str:
    get_status = getattr(exc, "status", None)
    status = get_status() if callable(get_status) else None
    return str(status or "").rsplit(".", 1)[-1]


def _message(exc: Exception) -> str:
    get_message = getattr(exc, "message", None)
    message = get_message() if callable(get_message) else None
    return str(message or exc)


def _check_config(model: ModelVersion, config: Mapping[str, Any]) -> frozenset[str]:
    """The card and Triton's config must agree; returns the inputs sent with a trailing [1] axis."""
    card = model.card
    declared = {t["name"]: t for t in config.get("input", [])}
    problems, expand = [], set()
    if set(declared) != {t.name for t in card.inputs}:
        problems.append(f"inputs {sorted(declared)} vs the card's {sorted(t.name for t in card.inputs)}")
    for spec in card.inputs:
        entry = declared.get(spec.name)
        if entry is None:
            continue
        if entry.get("data_type") != f"TYPE_{_WIRE_DTYPES[spec.dtype]}":
            problems.append(f"input {spec.name!r} is {entry.get('data_type')} in Triton, {spec.dtype} in the card")
        if [int(d) for d in entry.get("dims", [])] == [1] and "reshape" in entry and not entry["reshape"].get("shape"):
            expand.add(spec.name)
    if card.embedding_output not in {o["name"] for o in config.get("output", [])}:
        problems.append(f"no output {card.embedding_output!r}")
    if int(config.get("max_batch_size", 0)) < 1 <= card.max_batch_size:
        problems.append("Triton's config does not batch, the card does")
    if problems:
        raise CardError(
            f"Triton's config of {card.name} v{card.version} disagrees with {model.directory}/card.json: "
            + "; ".join(problems)
            + " (regenerate the Triton repository from the model repository)"
        )
    return frozenset(expand)
