"""The default model pack that `make models` built: complete, parity within tolerance, calibrated.

``make models`` keeps versions that exist, so a cached ``models/`` would pass these checks however
the exporters behave today. ``fresh_pack`` therefore builds the pack's MTCNN exporter (three
nets, about 3 s on 2 cores) into an empty folder in every run, and its cards and detector go
through the same checks as the cached ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contracts.card import card_json
from serving.models.repository import ModelRepository

DETECTORS = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")

# Per speaker model: embedding size and the parity bounds its importer documents.
SPEAKER_MODELS = {
    "resemblyzer-ge2e": (
        256,
        {
            "mel": ("min_cosine", 0.99999),
            "model": ("max_abs_diff", 1e-4),
            "graph": ("max_abs_diff", 1e-4),
            "utterance": ("min_cosine", 0.999),
            "padding": ("max_abs_diff", 1e-5),
        },
    ),
    "campplus-zh-en": (
        192,
        {
            "fbank": ("max_abs_diff", 5e-3),
            "model": ("min_cosine", 0.99999),
            "graph": ("max_abs_diff", 1e-4),
            "utterance": ("min_cosine", 0.9999),
            "padding": ("max_abs_diff", 1e-5),
        },
    ),
}


@pytest.mark.parametrize("name", sorted(SPEAKER_MODELS))
def test_speaker_card_records_parity_and_calibration(models_dir, name):
    dim, tolerances = SPEAKER_MODELS[name]
    model = ModelRepository(models_dir).get(name)
    card = model.card
    assert card.modality == "speaker" and card.embedding_dim == dim and card.sample_rate == 16000
    checks = {c["check"]: c for c in card_json(card)["parity"]["checks"]}
    assert set(checks) == set(tolerances)
    for check, (field, bound) in tolerances.items():
        value = checks[check][field]
        assert (value <= bound) if field == "max_abs_diff" else (value >= bound), (check, value)
    assert any("arctic" in s for s in card_json(card)["parity"]["inputs"])  # real speech took part
    cal = card.calibration
    assert cal is not None and cal.n_nontarget >= 1000
    assert -1 < cal.threshold_for(0.01) < cal.threshold_for(0.001) < 1
    assert (model.directory / "det.png").is_file()
    assert 'platform: "onnxruntime_onnx"' in (models_dir / name / "config.pbtxt").read_text()


def test_campplus_is_the_default_and_beats_ge2e_on_the_dev_trials(models_dir):
    """The served default is the stronger model on the same dev trials, through the same pipeline."""
    from serving.config import SpeakerSection

    repo = ModelRepository(models_dir)
    assert SpeakerSection().model == "campplus-zh-en"
    cam, ge2e = (repo.get(n).card.calibration for n in ("campplus-zh-en", "resemblyzer-ge2e"))
    assert cam is not None and ge2e is not None and cam.dev_trials == ge2e.dev_trials
    assert cam.eer < ge2e.eer


def test_vad_card_and_segments_match_the_wheels_model(models_dir, voices):
    import io

    import numpy as np
    import soundfile as sf

    from export.importers.silero_vad import source_path
    from serving.audio.vad import SileroVad

    card = json.loads((models_dir / "silero-vad" / "1" / "card.json").read_text())
    assert card["provenance"]["license"] == "MIT" and card["modality"] == "vad"
    checks = {c["check"]: c for c in card["parity"]["checks"]}
    assert checks["probabilities"]["max_abs_diff"] <= 1e-4 and checks["state"]["min_cosine"] >= 0.99999
    ours, original = SileroVad(models_dir / "silero-vad" / "1" / "model.onnx"), SileroVad(source_path())
    speech = sf.read(io.BytesIO(voices.clip(0, 0)), dtype="float32")[0]
    x = np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(8000, np.float32), speech])
    assert np.abs(ours.speech_probabilities(x) - original.speech_probabilities(x)).max() <= 1e-4
    assert ours.speech_segments(x) == original.speech_segments(x)


@pytest.fixture(scope="module")
def fresh_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pack's face-detector exporter run now, into an empty model repository."""
    from export.importers import mtcnn

    root = tmp_path_factory.mktemp("fresh-models")
    published = mtcnn.build_mtcnn(root)
    assert [p.relative_to(root).as_posix() for p in published] == [f"{name}/1" for name in DETECTORS]
    return root


@pytest.fixture(params=["cached", "fresh"])
def detector_pack(request: pytest.FixtureRequest) -> Path:
    """The folder the detector checks run on: the `make models` pack, then a fresh build."""
    return request.getfixturevalue("models_dir" if request.param == "cached" else "fresh_pack")


def test_detector_cards_record_parity_and_licence(detector_pack):
    repo = ModelRepository(detector_pack)
    for name in DETECTORS:
        card = repo.get(name).card
        assert card.modality == "face-detector" and card_json(card)["provenance"]["license"] == "MIT"
        checks = card_json(card)["parity"]["checks"]
        assert checks and all(c["max_abs_diff"] <= 1e-4 for c in checks)
        assert 'platform: "onnxruntime_onnx"' in (detector_pack / name / "config.pbtxt").read_text()


def test_detector_serves_from_the_pack(detector_pack):
    # The gateway's own loader and pipeline on the built nets find the face facenet-pytorch finds
    # (the full comparison, with its tolerances, is tests/serving/vision/test_mtcnn.py).
    from skimage import data as skimage_data  # the `models` extra: a missing install must fail, not skip

    from export.importers.torchvision_stub import ensure_torchvision
    from serving.vision.mtcnn import MtcnnDetector

    ensure_torchvision()
    from facenet_pytorch import MTCNN

    image = skimage_data.astronaut()
    boxes, probs = MTCNN(keep_all=True, device="cpu").detect(image)
    faces = MtcnnDetector.from_repository(detector_pack, threads=1).detect(image)
    assert len(faces) == len(boxes) == 1
    assert np.abs(faces[0].box - np.asarray(boxes[0], np.float32)).max() <= 1e-3
    assert abs(faces[0].probability - float(probs[0])) <= 1e-4


def test_face_cards_record_parity_licences_and_calibration(models_dir):
    repo = ModelRepository(models_dir)
    landmarks = repo.get("dlib-sp5").card
    assert card_json(landmarks)["provenance"]["license"] == "CC0-1.0" and landmarks.file == "model.npz"
    assert card_json(landmarks)["parity"]["checks"][0]["max_abs_diff"] == 0.0  # px against dlib itself (whole pixels)
    model = repo.get("dlib-resnet-v1")
    card = model.card
    assert card.modality == "face" and card.embedding_dim == 128 and card_json(card)["image"]["size"] == [150, 150]
    checks = {c["check"]: c for c in card_json(card)["parity"]["checks"]}
    assert checks["dlib"]["max_abs_diff"] <= 1e-4 and checks["graph"]["max_abs_diff"] <= 1e-4
    cal = card.calibration
    assert cal.n_nontarget >= 10_000 and cal.n_target >= 200 and cal.eer < 0.2
    assert -1 < cal.threshold_for(0.01) < cal.threshold_for(0.001) < 1
    assert set(card_json(card)["calibration"]["eer_by_group"]["eer"]) == {"low", "high"}
    assert (model.directory / "det.png").is_file()
