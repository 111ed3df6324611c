"""Triton configs generated from the card, the generated Triton repository, the python-backend
``model.py``'s batching, and TensorRT plans. (A real Triton loading the generated repository is in
``tests/integration/test_triton.py`` and ``tests/serving/inference``.)"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from contracts.card import AnyCard, card_json, parse_card
from export import tensorrt
from export.triton_config import config_pbtxt
from export.triton_python_backend import MODEL_PY, write_triton_repository
from export.triton_python_model import RequestError, check_request, merge, plan_groups, split_rows
from tests.export.test_repository import _card, _publish


def _with(card: AnyCard, **sections: object) -> AnyCard:
    """``card`` with some sections replaced, validated again."""
    return parse_card({**card_json(card), **sections})


def test_onnxruntime_variant_cpu():
    text = config_pbtxt(_card(1), instances=2)
    assert 'platform: "onnxruntime_onnx"' in text and "backend:" not in text
    assert "instance_group [ { count: 2 kind: KIND_CPU } ]" in text
    assert "version_policy: { latest: { num_versions: 1 } }" in text
    assert "allow_ragged_batch" not in text and "optimization" not in text and "parameters" not in text
    assert "preferred_batch_size: [ 4, 8 ]" in text and "max_queue_delay_microseconds: 1500" in text


def test_onnxruntime_variant_gpu_with_tensorrt_fp16_profiles_from_the_card():
    card = _with(
        _card(1),
        shape_ranges={"samples": {"min": 160, "opt": 48000, "max": 960000}, "batch": {"min": 1, "opt": 8, "max": 32}},
    )
    text = config_pbtxt(card, kind="KIND_GPU", tensorrt_fp16=True, version_policy="specific:1,3")
    assert "instance_group [ { count: 1 kind: KIND_GPU } ]" in text
    assert "version_policy: { specific: { versions: [ 1, 3 ] } }" in text
    assert 'gpu_execution_accelerator: [ {\n      name: "tensorrt"' in text
    assert 'parameters { key: "precision_mode" value: "FP16" }' in text
    assert 'parameters { key: "trt_engine_cache_enable" value: "1" }' in text
    # batch max is capped at the card's max_batch_size (16)
    assert 'key: "trt_profile_min_shapes" value: "waveform:1x160,lengths:1"' in text
    assert 'key: "trt_profile_opt_shapes" value: "waveform:8x48000,lengths:8"' in text
    assert 'key: "trt_profile_max_shapes" value: "waveform:16x960000,lengths:16"' in text
    assert text.count("{") == text.count("}")


def test_python_variant_allows_ragged_waveforms_and_passes_parameters():
    text = config_pbtxt(_card(1), variant="python", intra_op_threads=2, max_padding=2.0)
    assert 'backend: "python"' in text and "platform" not in text
    waveform, lengths = text.split('name: "lengths"')
    assert "allow_ragged_batch: true" in waveform and "allow_ragged_batch" not in lengths
    assert 'parameters: { key: "intra_op_threads" value: { string_value: "2" } }' in text
    assert 'parameters: { key: "max_padding" value: { string_value: "2" } }' in text
    assert "dynamic_batching" in text and text.count("{") == text.count("}")


def test_tensorrt_variant_and_refused_combinations():
    assert 'platform: "tensorrt_plan"' in config_pbtxt(_card(1), variant="tensorrt", kind="KIND_GPU")
    for options, message in [
        ({"variant": "python", "kind": "KIND_GPU"}, "CPU"),
        ({"variant": "tensorrt"}, "GPU"),
        ({"tensorrt_fp16": True}, "KIND_GPU only"),
        ({"variant": "tensorflow"}, "unknown Triton variant"),
        ({"kind": "KIND_TPU"}, "unknown instance kind"),
        ({"instances": 0}, "at least 1"),
        ({"version_policy": "newest"}, "latest:N"),
    ]:
        with pytest.raises(ValueError, match=message):
            config_pbtxt(_card(1), **options)


def test_a_model_without_batching_has_no_dynamic_batcher():
    card = _with(_card(1), serving={"max_batch_size": 0})
    text = config_pbtxt(card, variant="python")
    assert "max_batch_size: 0" in text and "dynamic_batching" not in text and "allow_ragged_batch" not in text
    assert "dims: [ -1, -1 ]" in text


def test_the_generated_triton_repository_links_models_and_copies_model_py(tmp_path):
    models = tmp_path / "models"
    _publish(models, 1)
    _publish(models, 2)
    (written,) = write_triton_repository(models, tmp_path / "triton", variant="python")
    assert written == tmp_path / "triton" / "toy"
    assert (written / "config.pbtxt").read_text() == config_pbtxt(_card(2), variant="python")
    for version in ("1", "2"):
        folder = written / version
        assert (folder / "model.onnx").is_symlink() and (folder / "model.onnx").resolve() == (
            models / "toy" / version / "model.onnx"
        ).resolve()
        assert (folder / "model.py").read_bytes() == MODEL_PY.read_bytes()
    assert (models / "toy" / "config.pbtxt").read_text() == config_pbtxt(_card(2))  # models/ is untouched
    copied = write_triton_repository(models, tmp_path / "shipped", variant="onnxruntime", copy=True)[0]
    assert not (copied / "1" / "model.onnx").is_symlink() and not (copied / "1" / "model.py").exists()
    assert json.loads((copied / "2" / "card.json").read_text())["version"] == 2
    with pytest.raises(FileNotFoundError, match="model.plan is missing"):
        write_triton_repository(models, tmp_path / "trt", variant="tensorrt", kind="KIND_GPU")


def test_regenerating_replaces_the_model_folder(tmp_path):
    models = tmp_path / "models"
    _publish(models, 1)
    write_triton_repository(models, tmp_path / "triton")
    _publish(models, 2)
    (written,) = write_triton_repository(models, tmp_path / "triton")
    assert sorted(p.name for p in written.iterdir()) == ["1", "2", "config.pbtxt"]
    assert [p.name for p in (tmp_path / "triton").iterdir()] == ["toy"]


# -- model.py's batching helpers (they run inside Triton's python backend) -------------------------
def _request(length: int, rows: int = 1) -> dict[str, np.ndarray]:
    return {"waveform": np.ones((rows, length), np.float32), "lengths": np.full(rows, length, np.int64)}


def test_requests_are_grouped_so_padding_stays_bounded():
    feeds = [_request(1000), _request(5000), _request(1100, rows=2), _request(4000)]
    groups = plan_groups(feeds, "waveform", max_padding=1.5)
    assert groups == [[0, 2], [3, 1]]
    assert plan_groups(feeds, "waveform", max_padding=100) == [[0, 2, 3, 1]]


def test_merging_pads_waveforms_keeps_lengths_and_splits_back():
    feeds = [_request(3, rows=2), _request(5)]
    merged = merge(feeds, "waveform")
    assert merged["waveform"].shape == (3, 5) and merged["waveform"][:2, 3:].sum() == 0
    assert merged["lengths"].tolist() == [3, 3, 5]
    parts = split_rows(np.arange(6).reshape(3, 2), [2, 1])
    assert [p.tolist() for p in parts] == [[[0, 1], [2, 3]], [[4, 5]]]


def test_equal_shapes_group_without_a_waveform_and_bad_requests_are_refused():
    feeds = [{"x": np.zeros((1, 4))}, {"x": np.zeros((2, 3))}, {"x": np.zeros((1, 4))}]
    assert plan_groups(feeds, None, 1.5) == [[0, 2], [1]]
    assert check_request(_request(10, rows=3), "waveform", "lengths") == 3
    with pytest.raises(RequestError, match="disagree"):
        check_request(
            {"waveform": np.zeros((2, 10), np.float32), "lengths": np.ones(3, np.int64)}, "waveform", "lengths"
        )
    with pytest.raises(RequestError, match=r"\[1, 10\]"):
        check_request({"waveform": np.zeros((1, 10), np.float32), "lengths": np.array([11])}, "waveform", "lengths")


# -- TensorRT -----------------------------------------------------------------------------------------
def test_profile_shapes_come_from_the_card_and_missing_ranges_are_errors():
    card = _with(
        _card(1),
        shape_ranges={"samples": {"min": 160, "opt": 48000, "max": 960000}, "batch": {"min": 1, "opt": 8, "max": 16}},
    )
    assert tensorrt.profile_shapes(card) == {
        "waveform": ((1, 160), (8, 48000), (16, 960000)),
        "lengths": ((1,), (8,), (16,)),
    }
    with pytest.raises(ValueError, match="no 'samples' range"):
        tensorrt.profile_shapes(_with(card, shape_ranges={"batch": card_json(card)["shape_ranges"]["batch"]}))


def test_without_tensorrt_build_plan_says_so_plainly(tmp_path, monkeypatch):
    monkeypatch.setattr(tensorrt.importlib.util, "find_spec", lambda name: None)
    assert not tensorrt.tensorrt_available()
    with pytest.raises(tensorrt.TensorRTUnavailable, match="TensorRT is not installed on this host"):
        tensorrt.build_plan(tmp_path, _card(1))
    with pytest.raises(tensorrt.TensorRTUnavailable, match="pip install tensorrt"):
        tensorrt.build_plan_for_version(tmp_path)


@pytest.mark.gpu
def test_a_plan_built_from_the_default_pack_matches_onnxruntime(models_dir, tmp_path):
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed on this GPU host")
    import onnxruntime as ort
    import torch

    version = tmp_path / "1"
    shutil.copytree(models_dir / "resemblyzer-ge2e" / "1", version)
    result = tensorrt.build_plan(version, fp16=True)
    assert result.path == version / "model.plan" and result.path.stat().st_size > 0
    rng = np.random.default_rng(0)
    waveform = (0.1 * rng.standard_normal((3, 48000))).astype(np.float32)
    lengths = np.array([48000, 40000, 20000], np.int64)
    expected = ort.InferenceSession(str(version / "model.onnx")).run(None, {"waveform": waveform, "lengths": lengths})[
        0
    ]
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(result.path.read_bytes())
    context = engine.create_execution_context()
    buffers = {"waveform": torch.from_numpy(waveform).cuda(), "lengths": torch.from_numpy(lengths).cuda()}
    for name, tensor in buffers.items():
        context.set_input_shape(name, tuple(tensor.shape))
    buffers["embedding"] = torch.empty(tuple(context.get_tensor_shape("embedding")), dtype=torch.float32, device="cuda")
    for name, tensor in buffers.items():
        context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.Stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    got = buffers["embedding"].cpu().numpy()
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.999, cosine
