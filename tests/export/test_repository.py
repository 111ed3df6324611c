"""The model repository contract: what export writes is what serving reads."""

from __future__ import annotations

import pytest

from contracts.card import CardError, SpeakerCard, card_json, parse_card, write_card
from contracts.card_sections import TrainingProvenance, tensor
from export.repository import next_version, publish, staging_dir, versions
from export.triton_config import config_pbtxt
from serving.errors import InvalidInput, NotFound
from serving.models.repository import ModelRepository
from serving.scoring import decide


def _card(version: int) -> SpeakerCard:
    return SpeakerCard(
        name="toy",
        version=version,
        provenance=TrainingProvenance(run="runs/toy", step=1, recipe="kind: speaker"),
        inputs=[tensor("waveform", "float32", [-1, -1], "waveform"), tensor("lengths", "int64", [-1], "lengths")],
        outputs=[tensor("embedding", "float32", [-1, 8], "embedding")],
        audio={"sample_rate": 16000, "channels": 1},
        embedding={"output": "embedding", "dim": 8, "normalized": True, "metric": "cosine"},
        serving={"max_batch_size": 16, "preferred_batch_sizes": [4, 8], "max_queue_delay_us": 1500},
        calibration={
            "dev_trials": "dev",
            "eer": 0.1,
            "eer_threshold": 0.5,
            "n_target": 10,
            "n_nontarget": 1000,
            "thresholds": [{"far": 0.01, "threshold": 0.7, "frr": 0.2}, {"far": 0.001, "threshold": 0.8, "frr": 0.4}],
        },
    )


def _publish(root, version):
    staged = staging_dir(root, "toy", version)
    (staged / "model.onnx").write_bytes(b"onnx")
    write_card(staged, _card(version))
    return publish(staged, root, "toy", version)


def test_published_versions_are_read_back_by_the_gateway(tmp_path):
    _publish(tmp_path, 1)
    _publish(tmp_path, next_version(tmp_path, "toy"))
    repo = ModelRepository(tmp_path)
    assert repo.names() == ["toy"] and repo.versions("toy") == [1, 2] == versions(tmp_path, "toy")
    model = repo.get("toy")
    assert model.card.version == 2 and model.card.embedding_dim == 8 and model.card.sample_rate == 16000
    assert decide(0.8, model.card, 0.001).accepted and not decide(0.79, model.card, 0.001).accepted
    with pytest.raises(InvalidInput, match="choose one of: 0.01, 0.001"):
        decide(0.5, model.card, 0.05)
    with pytest.raises(NotFound, match="no version 7"):
        repo.get("toy", 7)


def test_staging_is_invisible_and_versions_are_immutable(tmp_path):
    _publish(tmp_path, 1)
    staged = staging_dir(tmp_path, "toy", 2)
    (staged / "model.onnx").write_bytes(b"half")  # an interrupted export: no card yet
    assert ModelRepository(tmp_path).versions("toy") == [1]
    with pytest.raises(FileNotFoundError):
        publish(staged, tmp_path, "toy", 2)
    again = staging_dir(tmp_path, "toy", 1)
    write_card(again, _card(1))
    with pytest.raises(FileExistsError):
        publish(again, tmp_path, "toy", 1)


def test_triton_config_is_generated_from_the_card(tmp_path):
    _publish(tmp_path, 1)
    text = (tmp_path / "toy" / "config.pbtxt").read_text()
    assert text == config_pbtxt(_card(1))
    assert 'platform: "onnxruntime_onnx"' in text and "max_batch_size: 16" in text
    assert "dims: [ -1 ]" in text  # waveform: the batch axis is implicit
    assert "reshape: { shape: [ ] }" in text  # lengths: a per-row scalar
    assert "preferred_batch_size: [ 4, 8 ]" in text and "max_queue_delay_microseconds: 1500" in text


def test_unsupported_or_incomplete_cards_are_refused():
    card = card_json(_card(1))
    with pytest.raises(CardError, match="schema"):
        parse_card({**card, "schema": 99})
    with pytest.raises(CardError, match="embedding.dim: Field required"):
        parse_card({**card, "embedding": {"output": "embedding", "normalized": True}})
