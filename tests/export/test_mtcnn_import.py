"""MTCNN's three nets → the model repository: cards, dynamic shapes, parity, and failure when wrong."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from contracts.card import card_json, load_card
from export.card import sha256_file
from export.importers import mtcnn
from export.importers.torchvision_stub import batched_nms, ensure_torchvision, nms
from export.parity import ParityError, onnx_session
from serving.models.repository import ModelRepository
from serving.vision.mtcnn import MODEL_NAMES

pytestmark = pytest.mark.skipif(importlib.util.find_spec("facenet_pytorch") is None, reason="needs facenet-pytorch")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    published = mtcnn.build_mtcnn(root)
    assert [p.relative_to(root).as_posix() for p in published] == [f"{n}/1" for n in mtcnn.NAMES]
    return root


def test_cards_record_the_wheels_weights_and_parity(models):
    assert mtcnn.NAMES == MODEL_NAMES  # the gateway loads the names the exporter writes
    repository = ModelRepository(models)
    for name, weights in zip(mtcnn.NAMES, ("pnet.pt", "rnet.pt", "onet.pt"), strict=True):
        model = repository.get(name)
        card = card_json(model.card)
        assert model.card.modality == "face-detector" and model.card.version == 1
        assert card["provenance"]["license"] == "MIT" and card["provenance"]["package_version"] == "2.6.0"
        assert card["provenance"]["source_sha256"] == sha256_file(mtcnn.package_dir() / "data" / weights)
        (check,) = card["parity"]["checks"]
        assert check["cases"] >= 8 and check["max_abs_diff"] <= 1e-4
        assert card["image"]["layout"] == "NCHW" and "127.5" in card["image"]["normalization"]
        assert [t.role for t in model.card.inputs] == ["image"]
        assert load_card(model.directory) == model.card
        assert 'platform: "onnxruntime_onnx"' in (models / name / "config.pbtxt").read_text()
    assert card_json(repository.get("mtcnn-rnet").card)["image"]["size"] == [24, 24]
    assert card_json(repository.get("mtcnn-onet").card)["image"]["size"] == [48, 48]


def test_graphs_take_any_batch_and_pnet_any_size(models):
    pnet, rnet, onet = (onnx_session(models / name / "1" / "model.onnx", threads=1) for name in mtcnn.NAMES)
    rng = np.random.default_rng(1)
    for batch, height, width in [(1, 12, 12), (3, 50, 31), (2, 128, 97)]:
        regression, probability = pnet.run(
            None, {"image": rng.uniform(-1, 1, (batch, 3, height, width)).astype(np.float32)}
        )
        cells = (-(-(height - 2) // 2) - 4, -(-(width - 2) // 2) - 4)  # 3x3 conv, 2x2 ceil pool, two 3x3 convs
        assert regression.shape == (batch, 4, *cells) and probability.shape == (batch, 2, *cells)
        np.testing.assert_allclose(probability.sum(1), 1, atol=1e-5)
    assert [o.shape for o in rnet.run(None, {"image": np.zeros((5, 3, 24, 24), np.float32)})] == [(5, 4), (5, 2)]
    assert [o.shape for o in onet.run(None, {"image": np.zeros((2, 3, 48, 48), np.float32)})] == [
        (2, 4),
        (2, 10),
        (2, 2),
    ]


def test_existing_versions_are_kept_unless_forced(models, capsys):
    before = (models / "mtcnn-onet" / "1" / "card.json").read_text()
    assert mtcnn.build_mtcnn(models) == []
    assert (models / "mtcnn-onet" / "1" / "card.json").read_text() == before
    assert "parity" not in capsys.readouterr().out


def test_a_wrong_export_fails_parity(tmp_path, monkeypatch):
    original = mtcnn.export_graph

    def off_by_a_bit(module, name, path):
        import copy

        wrong = copy.deepcopy(module)
        with torch.no_grad():
            wrong.conv1.bias += 1e-3  # a tiny change in the first layer's bias
        return original(wrong, name, path)

    monkeypatch.setattr(mtcnn, "export_graph", off_by_a_bit)
    with pytest.raises(ParityError, match="rnet outputs"):
        mtcnn.stage(tmp_path, 1, "mtcnn-rnet")


def test_torchvision_stand_in_has_torchvisions_nms_semantics():
    stand_in = ensure_torchvision()  # True where torchvision is missing or broken beside this torch
    from torchvision.ops.boxes import batched_nms as imported

    assert (imported is batched_nms) == stand_in
    # IoU of [0,0,10,10] with [0,0,10,5] is exactly 0.5 (areas without +1): kept at 0.5, gone at 0.49.
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30], [21, 20, 31, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 1]
    assert nms(boxes, scores, 0.49).tolist() == [3, 0]
    # Per class: the same boxes in another class never suppress each other; order by score overall.
    classes = torch.tensor([0, 1, 0, 0])
    assert batched_nms(boxes, scores, classes, 0.49).tolist() == [3, 0, 1]
    assert batched_nms(boxes[:0], scores[:0], classes[:0], 0.5).tolist() == []
