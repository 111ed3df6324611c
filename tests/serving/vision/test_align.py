"""dlib's face-chip geometry in numpy, held to ``dlib.get_face_chip`` bit for bit (dlib-bin needed)."""

from __future__ import annotations

import numpy as np
import pytest

from serving.vision import align
from serving.vision.align import CHIP_PADDING, CHIP_SIZE, DLIB_TEMPLATE_5, face_chip

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")

# facenet-pytorch MTCNN on skimage's astronaut (notes §1c), and dlib's HOG box for the same face.
ASTRONAUT_MTCNN_BOX = np.array([181.05, 62.16, 267.75, 172.05])
ASTRONAUT_MTCNN_POINTS = np.array([[205.0, 101.7], [246.8, 103.7], [224.7, 129.0], [201.7, 139.2], [245.3, 141.9]])
ASTRONAUT_HOG_BOX = np.array([175, 76, 265, 166])


@pytest.fixture(scope="module")
def predictor():
    from pathlib import Path

    path = Path(frm.__file__).parent / "models" / "shape_predictor_5_face_landmarks.dat"
    return dlib.shape_predictor(str(path))


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    from export.importers.dlib_landmarks import real_faces

    return real_faces()


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    from PIL import Image

    pil = Image.fromarray(image)
    return np.asarray(pil.resize((round(pil.width * factor), round(pil.height * factor)), Image.BILINEAR))


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).rotate(degrees, Image.BILINEAR, expand=True))


def _cases(photos):
    """(label, image, dlib rectangle): each photo as is, rotated, mirrored, and scaled from ×0.35 (small
    face, upsampled chip) to ×4 (two ``pyramid_down`` levels); boxes from dlib's HOG detector on the
    photo, moved with the scaling."""
    detector = dlib.get_frontal_face_detector()
    for name, photo in photos.items():
        for variant, image in (
            ("orig", photo),
            ("mirror", photo[:, ::-1].copy()),
            ("rot+20", _rotate(photo, 20)),
            ("rot-12", _rotate(photo, -12)),
        ):
            for k, rect in enumerate(detector(image, 0)):
                yield f"{name}/{variant}/{k}", image, rect
        rect = max(detector(photo, 0), key=lambda r: r.area())
        for factor in (0.35, 1.7, 2.5, 4.0):
            box = [round(v * factor) for v in (rect.left(), rect.top(), rect.right(), rect.bottom())]
            yield f"{name}/x{factor}", _resize(photo, factor), dlib.rectangle(*box)


def _points(det) -> np.ndarray:
    return np.array([[det.part(i).x, det.part(i).y] for i in range(det.num_parts)], dtype=np.float64)


def test_face_chips_are_bit_identical_to_dlib(photos, predictor):
    labels = []
    for label, image, rect in _cases(photos):
        det = predictor(image, rect)
        expected = dlib.get_face_chip(image, det, CHIP_SIZE, CHIP_PADDING)
        got = face_chip(image, _points(det))
        assert got.shape == (CHIP_SIZE, CHIP_SIZE, 3) and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - expected.astype(int))
        assert diff.max() == 0, f"{label}: {np.count_nonzero(diff)} values differ, max {diff.max()}"
        labels.append(label)
    # Both photos in all variants, including faces that need one and two pyramid levels.
    assert len(labels) >= 14 and {"astronaut/x4.0", "grace_hopper/x1.7", "grace_hopper/rot+20/0"} <= set(labels)


def test_other_sizes_and_paddings_match_dlib(photos, predictor):
    image = photos["grace_hopper"]
    rect = max(dlib.get_frontal_face_detector()(image, 0), key=lambda r: r.area())
    det = predictor(image, rect)
    for size, padding in ((112, 0.0), (160, 0.4), (75, 0.25)):
        expected = dlib.get_face_chip(image, det, size, padding)
        assert np.array_equal(face_chip(image, _points(det), size, padding), expected), (size, padding)


def test_a_shifted_landmark_changes_the_chip(photos, predictor):
    """The comparison above can fail: one landmark a pixel off gives another chip."""
    image = photos["astronaut"]
    det = predictor(image, dlib.rectangle(*ASTRONAUT_HOG_BOX.tolist()))
    points = _points(det)
    points[4, 1] += 1
    assert not np.array_equal(face_chip(image, points), dlib.get_face_chip(image, det, CHIP_SIZE, CHIP_PADDING))


def test_pyramid_down_matches_dlib(photos):
    pyr = dlib.pyramid_down(2)
    for image in (photos["astronaut"], photos["grace_hopper"][5:400, 3:298]):
        assert np.array_equal(align.pyramid_down2(image), np.asarray(pyr(np.ascontiguousarray(image))))
    assert align.pyramid_down2(np.zeros((8, 100, 3), np.uint8)).size == 0


def test_chip_transform_maps_the_template_onto_the_landmarks(photos, predictor):
    image = photos["astronaut"]
    points = _points(predictor(image, dlib.rectangle(*ASTRONAUT_HOG_BOX.tolist())))
    affine = align.chip_transform(points)
    template = (CHIP_PADDING + DLIB_TEMPLATE_5) / (1 + 2 * CHIP_PADDING) * CHIP_SIZE
    mapped = template @ affine[:, :2].T + affine[:, 2]
    # The similarity fit leaves a residual of a pixel or two; the chip spans ~120 px of this image.
    assert np.abs(mapped - points).max() < 3.0
    assert 100 < np.hypot(*affine[:, 0]) * (CHIP_SIZE - 1) < 140
    # With no pyramid level, the chip is the image sampled through this map.
    chip = face_chip(image, points)
    xy = np.array([[20, 30], [75, 75], [120, 100]])
    for x, y in xy:
        ix, iy = affine @ np.array([x, y, 1.0])
        assert abs(int(chip[y, x, 0]) - int(image[int(np.floor(iy + 0.5)), int(np.floor(ix + 0.5)), 0])) < 40


def test_fallback_chip_is_close_to_dlibs(photos, predictor):
    image = photos["astronaut"]
    points = _points(predictor(image, dlib.rectangle(*ASTRONAUT_HOG_BOX.tolist())))
    reference = face_chip(image, points)
    fallback = align.fallback_chip_from_mtcnn(image, ASTRONAUT_MTCNN_POINTS)
    assert fallback.shape == (CHIP_SIZE, CHIP_SIZE, 3) and fallback.dtype == np.uint8

    # dlib's landmarks land within a few chip pixels of where dlib's own chip puts them.
    def in_chip(details):
        to_chip = np.linalg.inv(np.vstack([details.affine(), [0.0, 0.0, 1.0]]))
        return points @ to_chip[:2, :2].T + to_chip[:2, 2]

    ours = in_chip(align.chip_details(ASTRONAUT_MTCNN_POINTS, align.MTCNN_TEMPLATE_5))
    theirs = in_chip(align.chip_details(points, DLIB_TEMPLATE_5))
    assert np.abs(ours - theirs).max() < 5.0
    # ... and the chip is nearer dlib's than a chip cut 8 px off.
    shifted = align.fallback_chip_from_mtcnn(image, ASTRONAUT_MTCNN_POINTS + np.array([8.0, 0.0]))
    assert np.abs(fallback.astype(float) - reference).mean() < np.abs(shifted.astype(float) - reference).mean()
    # Where dlib's 68-point mean face puts the eye centres: between dlib's 5-point eye corners.
    eyes_5 = (DLIB_TEMPLATE_5[[2, 0]] + DLIB_TEMPLATE_5[[3, 1]]) / 2
    assert np.abs(align.MTCNN_TEMPLATE_5[:2] - eyes_5).max() < 0.02


def test_square_box_is_square_integer_and_near_dlibs_box():
    box = align.square_box_from_mtcnn(ASTRONAUT_MTCNN_BOX)
    assert box.dtype == np.float32 and np.array_equal(box, np.round(box))
    assert abs((box[2] - box[0]) - (box[3] - box[1])) <= 1
    x1, y1 = np.maximum(box[:2], ASTRONAUT_HOG_BOX[:2])
    x2, y2 = np.minimum(box[2:], ASTRONAUT_HOG_BOX[2:])
    inter = max(x2 - x1, 0) * max(y2 - y1, 0)
    union = np.prod(box[2:] - box[:2]) + np.prod(ASTRONAUT_HOG_BOX[2:] - ASTRONAUT_HOG_BOX[:2]) - inter
    assert inter / union > 0.8
    # The raw MTCNN box is taller than dlib's square and starts higher (on the brow).
    assert ASTRONAUT_MTCNN_BOX[1] < box[1] and ASTRONAUT_MTCNN_BOX[3] - ASTRONAUT_MTCNN_BOX[1] > box[3] - box[1]


def test_chip_outside_the_image_is_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    points = np.array([[1255, 1104], [1238, 1105], [1195, 1101], [1212, 1103], [1224, 1135]], dtype=np.float64)
    assert face_chip(image, points).max() == 0
    with pytest.raises(ValueError, match="RGB"):
        align.extract_chip(image[..., 0], align.chip_details(points, DLIB_TEMPLATE_5))
