"""The model card contract: strict typed validation with dotted paths, the committed JSON Schema
(drift, and checked by an independent validator), and every card the default pack writes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from contracts.card import CARD_FILE, CardError, FaceCard, SpeakerCard, card_json, load_card, parse_card, write_card
from contracts.schema import SCHEMA_PATH, schema_text

REPO = Path(__file__).resolve().parents[2]


def _cards(models_dir: Path) -> list[Path]:
    return sorted(models_dir.glob(f"*/[0-9]*/{CARD_FILE}"))


@pytest.fixture(scope="module")
def speaker_raw(models_dir: Path) -> dict:
    return json.loads((models_dir / "resemblyzer-ge2e" / "1" / CARD_FILE).read_text())


def test_committed_schema_matches_the_types() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "contracts/card.schema.json drifted from contracts/card.py: run `python -m contracts.schema`"
    )


def test_every_card_of_the_pack_validates_both_ways(models_dir: Path) -> None:
    """Typed loading, and the committed schema through jsonschema (a validator that is not ours)."""
    schema = json.loads(SCHEMA_PATH.read_text())
    paths = _cards(models_dir)
    modalities = set()
    for path in paths:
        raw = json.loads(path.read_text())
        jsonschema.validate(raw, schema)
        card = load_card(path.parent)
        modalities.add(card.modality)
        assert card_json(card) == raw, f"{path}: the card does not round-trip through its type"
    assert modalities >= {"speaker", "sound", "vad", "face", "face-detector", "face-landmarks"}


def test_the_schema_rejects_what_the_type_rejects(speaker_raw: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    bad = copy.deepcopy(speaker_raw)
    bad["embedding"]["dimension"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(CardError):
        parse_card(bad)


def test_unknown_and_missing_keys_name_their_dotted_path(speaker_raw: dict) -> None:
    bad = copy.deepcopy(speaker_raw)
    bad["embedding"]["dimm"] = 3
    del bad["audio"]["sample_rate"]
    bad["inputs"][1]["dtype"] = "int8"
    with pytest.raises(CardError) as caught:
        parse_card(bad, "x/card.json")
    message = str(caught.value)
    assert message.startswith("x/card.json: ")
    for path in ("embedding.dimm", "audio.sample_rate", "inputs[1].dtype"):
        assert path in message


def test_another_schema_version_is_refused_with_what_to_do(speaker_raw: dict) -> None:
    old = dict(speaker_raw, schema=1)
    with pytest.raises(CardError, match=r"schema 1 is not supported \(expected 2\).*make models"):
        parse_card(old)


def test_a_modality_gets_its_own_type_and_requirements(speaker_raw: dict, models_dir: Path) -> None:
    assert isinstance(parse_card(speaker_raw), SpeakerCard)
    face = json.loads((models_dir / "dlib-resnet-v1" / "1" / CARD_FILE).read_text())
    card = parse_card(face)
    assert isinstance(card, FaceCard)
    # dlib's own chip geometry (dlib.get_face_chip(img, shape, 150, 0.25)): 150 px, padding 0.25.
    assert (card.image.alignment.chip_size, card.image.alignment.padding) == (150, 0.25)
    assert len(card.image.alignment.template) == 5
    del face["image"]["alignment"]
    with pytest.raises(CardError, match=r"image\.alignment: Field required"):
        parse_card(face)
    as_face = dict(copy.deepcopy(speaker_raw), modality="face")  # a speaker card relabelled: no image
    with pytest.raises(CardError, match="image: Field required"):
        parse_card(as_face)


def test_chip_size_must_agree_with_the_image_size(models_dir: Path) -> None:
    face = json.loads((models_dir / "dlib-resnet-v1" / "1" / CARD_FILE).read_text())
    face["image"]["alignment"]["chip_size"] = 112
    with pytest.raises(CardError, match="differs from alignment.chip_size 112"):
        parse_card(face)


def test_write_card_refuses_an_invalid_assignment_and_writes_atomically(speaker_raw: dict, tmp_path: Path) -> None:
    card = parse_card(speaker_raw)
    with pytest.raises(ValueError):
        card.embedding.dim = -1  # validated on assignment: a builder cannot produce a bad card
    write_card(tmp_path, card)
    assert [p.name for p in tmp_path.iterdir()] == [CARD_FILE]  # no temp file left behind
    assert load_card(tmp_path) == card


def test_contracts_import_without_torch_grpc_or_onnxruntime() -> None:
    code = (
        "import sys, contracts.card, contracts.schema, contracts.trials, contracts.waveforms, "
        "contracts.landmarks_npz, contracts.atomic, contracts.face_geometry; "
        "print(sorted(m for m in ('torch', 'grpc', 'onnxruntime', 'serving', 'training', 'export') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
