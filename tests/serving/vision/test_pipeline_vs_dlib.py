"""The served face pipeline (MTCNN → square box → numpy 5 points → dlib chip → ONNX ResNet)
against dlib's own native pipeline (HOG detector → shape_predictor → get_face_chip →
compute_face_descriptor) on the same photos: descriptor L2 distance (dlib's same-person
threshold is 0.6; the issue aims under 0.1)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from contracts.face_geometry import dlib_alignment
from serving.models.repository import ModelRepository
from serving.vision.landmarks import ShapePredictor5
from serving.vision.mtcnn import MtcnnDetector
from serving.vision.pipeline import FacePipeline
from training.data.face_scenes import photo

# The README quotes these bounds. Measured on the reference VM (``-s`` prints every distance):
# 0.000 on three astronaut variants, 0.120 at worst (grace-hopper), mean 0.045. The differences
# come from the boxes (MTCNN's, squared, vs dlib's HOG detector's), not from arithmetic, so they
# should move across machines by float rounding only.
MEAN_BOUND = 0.05  # under the aim of 0.1
MAX_BOUND = 0.125
GAP = (0.05, 0.12)  # mean L2 further without dlib's 5 points: 0.086 measured


def _variants() -> dict[str, np.ndarray]:
    out = {}
    for name in ("astronaut", "grace-hopper"):
        image = photo(name)
        pil = Image.fromarray(image)
        out[name] = image
        out[f"{name}-mirror"] = np.ascontiguousarray(image[:, ::-1])
        out[f"{name}-x0.6"] = np.asarray(pil.resize((int(pil.width * 0.6), int(pil.height * 0.6)), Image.BILINEAR))
        out[f"{name}-rot12"] = np.asarray(pil.rotate(12, resample=Image.BILINEAR))
    return out


@pytest.fixture(scope="module")
def distances(measured) -> dict[str, float]:
    """Variant → descriptor L2 to dlib's native pipeline, served as configured (dlib's 5 points)."""
    return {name: pair[0] for name, pair in measured.items()}


@pytest.fixture(scope="module")
def measured(models_dir) -> dict[str, tuple[float, float]]:
    """Variant → (L2 with dlib's 5 points, L2 with MTCNN's own points: ``landmarks_model = ""``)."""
    dlib = pytest.importorskip("dlib")
    import onnxruntime as ort

    from export.importers.dlib_landmarks import source_path as sp5_path
    from export.importers.dlib_resnet import source_path as resnet_path

    repo = ModelRepository(models_dir)
    stages = [repo.get(f"mtcnn-{s}").model_path for s in ("pnet", "rnet", "onet")]
    mtcnn = MtcnnDetector(*stages)
    pipeline = FacePipeline(mtcnn, ShapePredictor5.load(repo.get("dlib-sp5").model_path), dlib_alignment(150))
    fallback = FacePipeline(mtcnn, None, dlib_alignment(150))
    session = ort.InferenceSession(str(repo.get("dlib-resnet-v1").model_path), providers=["CPUExecutionProvider"])
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(sp5_path()))
    recognizer = dlib.face_recognition_model_v1(str(resnet_path()))
    out = {}
    for name, image in _variants().items():
        found = detector(image, 1)
        if len(found) != 1:
            found = detector(image, 0)
        if len(found) != 1:
            continue  # dlib's HOG detector itself misses some variants: nothing to compare against
        shape = predictor(image, found[0])
        reference = np.array(recognizer.compute_face_descriptor(dlib.get_face_chip(image, shape, 150, 0.25)))
        ours, points_only = (
            session.run(None, {session.get_inputs()[0].name: p.main_face(image).chip[None]})[0][0]
            for p in (pipeline, fallback)
        )
        out[name] = (float(np.linalg.norm(ours - reference)), float(np.linalg.norm(points_only - reference)))
    return out


def test_served_descriptors_are_within_the_aim_of_dlibs_own_pipeline(distances):
    print({k: round(v, 4) for k, v in distances.items()})
    assert set(distances) == set(_variants()), distances  # dlib's HOG finds a face in all 8 of them
    assert np.mean(list(distances.values())) <= MEAN_BOUND and max(distances.values()) <= MAX_BOUND, distances


def test_mtcnn_points_alone_align_further_from_dlibs_pipeline(measured):
    # What ``[face] landmarks_model = ""`` costs (the README's configuration note quotes it).
    print({k: (round(a, 4), round(b, 4)) for k, (a, b) in measured.items()})
    gap = np.mean([b for _, b in measured.values()]) - np.mean([a for a, _ in measured.values()])
    print(f"mean L2 further from dlib's pipeline without dlib's 5 points: {gap:.3f}")
    assert GAP[0] <= gap <= GAP[1], gap
