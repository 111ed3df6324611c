"""The Triton backend's own behaviour: error mapping, which errors are retried, deadlines, a
server that is not there, and a Triton config that disagrees with the card."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from contracts.card import CardError
from contracts.waveforms import waveform_batch
from export.triton_server import free_port
from serving.errors import DeadlineExceeded, InvalidInput, Overloaded, Unavailable
from serving.inference.triton_backend import TritonBackend

KEY = "speaker/1"
CONFIG = {
    "max_batch_size": 16,
    "output": [{"name": "embedding"}],
    "input": [
        {"name": "waveform", "data_type": "TYPE_FP32", "dims": ["-1"]},
        {"name": "lengths", "data_type": "TYPE_INT64", "dims": ["1"], "reshape": {}},
    ],
}


class FakeClient:
    """Stands in for tritonclient's InferenceServerClient: fails with ``errors`` in turn, then answers."""

    def __init__(self, errors=(), config=CONFIG, delay=0.0):
        self.errors, self.config, self.delay, self.calls, self.shapes = list(errors), config, delay, 0, []

    def is_model_ready(self, name, version, client_timeout=None):
        return True

    def get_model_config(self, name, version, as_json=False, client_timeout=None):
        return {"config": self.config}

    def infer(self, name, inputs, model_version="", outputs=None, client_timeout=None):
        self.calls += 1
        time.sleep(self.delay)
        if self.errors:
            raise self.errors.pop(0)
        self.shapes.append({i.name(): tuple(i.shape()) for i in inputs})
        rows = inputs[0].shape()[0]
        return type("Result", (), {"as_numpy": lambda self, _: np.ones((rows, 256), np.float32)})()

    def close(self):
        pass


def _error(status):
    return InferenceServerException("boom", status=f"StatusCode.{status}")


def _backend(client, speaker_model, **kwargs):
    backend = TritonBackend("fake:1", client=client, retry_backoff_s=0.001, **kwargs)
    backend.load(KEY, speaker_model)
    return backend


def _feeds(rows=2):
    return waveform_batch([np.zeros(16000 + i, np.float32) for i in range(rows)])


@pytest.fixture
def speaker_model(models_dir):
    from serving.models.repository import ModelRepository

    return ModelRepository(models_dir).get("resemblyzer-ge2e")


def test_lengths_travel_as_batch_by_one_and_big_batches_in_parts(speaker_model):
    client = FakeClient()
    out = _backend(client, speaker_model).embed(KEY, _feeds(20))
    assert out.shape == (20, 256)
    assert client.shapes == [{"waveform": (16, 16019), "lengths": (16, 1)}, {"waveform": (4, 16019), "lengths": (4, 1)}]


def test_unavailable_is_retried_then_succeeds(speaker_model):
    client = FakeClient([_error("UNAVAILABLE"), _error("UNAVAILABLE")])
    assert _backend(client, speaker_model, retries=2).embed(KEY, _feeds()).shape == (2, 256)
    assert client.calls == 3


@pytest.mark.parametrize(
    "status, error",
    [
        ("UNAVAILABLE", Unavailable),
        ("INVALID_ARGUMENT", InvalidInput),
        ("RESOURCE_EXHAUSTED", Overloaded),
        ("DEADLINE_EXCEEDED", DeadlineExceeded),
        ("INTERNAL", Unavailable),
        ("NOT_FOUND", Unavailable),
    ],
)
def test_errors_map_to_gateway_statuses_and_only_unavailable_is_retried(speaker_model, status, error):
    client = FakeClient([_error(status)] * 5)
    with pytest.raises(error, match="boom"):
        _backend(client, speaker_model, retries=2).embed(KEY, _feeds())
    assert client.calls == (3 if status == "UNAVAILABLE" else 1)


def test_retries_stop_at_the_deadline(speaker_model):
    client = FakeClient([_error("UNAVAILABLE")] * 100, delay=0.05)
    backend = _backend(client, speaker_model, retries=100, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises((Unavailable, DeadlineExceeded)):
        backend.embed(KEY, _feeds())
    assert time.monotonic() - started < 1.0 and client.calls < 10


def test_a_config_that_disagrees_with_the_card_is_refused(speaker_model):
    wrong = {**CONFIG, "input": [{**CONFIG["input"][0], "data_type": "TYPE_FP16"}, CONFIG["input"][1]]}
    with pytest.raises(CardError, match="'waveform' is TYPE_FP16"):
        _backend(FakeClient(config=wrong), speaker_model)
    with pytest.raises(CardError, match="no output 'embedding'"):
        _backend(FakeClient(config={**CONFIG, "output": [{"name": "x"}]}), speaker_model)


@pytest.mark.integration
def test_a_server_that_is_not_there_is_unavailable_fast(speaker_model):
    backend = TritonBackend(f"127.0.0.1:{free_port()}", probe_timeout_s=1, timeout_s=2)
    started = time.monotonic()
    with pytest.raises(Unavailable, match="Triton at 127.0.0.1:.* is unavailable"):
        backend.load(KEY, speaker_model)
    assert not backend.ready(KEY) and time.monotonic() - started < 3
    backend.close()


@pytest.mark.integration
def test_a_version_triton_does_not_serve_is_unavailable(triton_server, speaker_model):
    card = speaker_model.card.model_copy(update={"version": 9})
    backend = TritonBackend(triton_server.url)
    with pytest.raises(Unavailable, match="version 9"):
        backend.load(KEY, dataclasses.replace(speaker_model, card=card))
    backend.close()


def test_configuration_chooses_the_backend_per_model():
    from serving.config import ConfigError, load_config
    from serving.inference.onnxruntime_backend import OnnxRuntimeBackend
    from serving.loader import make_backend

    config = load_config(
        env={"TOITSU_SPEAKER__BACKEND": "triton", "TOITSU_TRITON__URL": "127.0.0.9:8001"},
        overrides={"triton.timeout_seconds": "3", "triton.retries": "1"},
    )
    backend = make_backend(config, config.speaker.backend, threads=1)
    assert isinstance(backend, TritonBackend) and backend.url == "127.0.0.9:8001" and backend._timeout == 3.0
    backend.close()
    assert isinstance(make_backend(load_config(), "onnxruntime", threads=1), OnnxRuntimeBackend)
    with pytest.raises(ConfigError, match=r"\[speaker\] backend must be one of onnxruntime, triton"):
        load_config(overrides={"speaker.backend": "tensorflow"})
    with pytest.raises(ConfigError, match="unknown key triton.port"):
        load_config(overrides={"triton.port": "8001"})
