"""facenet-pytorch's MTCNN face detector (MIT) → three models in the repository.

Source: the P-, R- and O-net weights that ship inside the facenet-pytorch wheel
(``facenet_pytorch/data/{pnet,rnet,onet}.pt``; MTCNN of Zhang et al. 2016, converted by
facenet-pytorch from davidsandberg/facenet's TensorFlow port), each exported to its own ONNX
graph (opset 17, TorchScript exporter) with a dynamic batch, and a dynamic height and width for
the fully convolutional P-net:

- ``mtcnn-pnet``: image [B, 3, H, W] → box_regression [B, 4, H', W'], face_probability [B, 2, H', W']
  with H' = ⌈(H − 2) / 2⌉ − 4 (one 12×12 window per cell, stride 2);
- ``mtcnn-rnet``: image [B, 3, 24, 24] → box_regression [B, 4], face_probability [B, 2];
- ``mtcnn-onet``: image [B, 3, 48, 48] → box_regression [B, 4], landmarks [B, 10] (five x then
  five y, relative to the box), face_probability [B, 2].

Inputs are float32 NCHW RGB already normalised as facenet-pytorch does, (pixel − 127.5) · 0.0078125,
after "area" resampling in float (the graph cannot take uint8: the resampled pixels are not
integers). Each export is accepted only if ONNX Runtime matches the torch module (max abs diff
≤ 1e-4 over all outputs on random inputs). The pipeline around the nets (pyramid, NMS,
regression, landmarks) is ``serving/vision/mtcnn.py``, checked against facenet-pytorch's own
``MTCNN.detect`` in ``tests/serving/vision/test_mtcnn.py``.
"""

from __future__ import annotations

import functools
import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np

from contracts.card import FaceDetectorCard
from contracts.card_sections import ImageSpec, ImportProvenance, TensorSpec, tensor
from contracts.card_sections import Parity as ParitySection
from export.card import sha256_file
from export.parity import Parity, compare, onnx_session, require
from export.repository import loadable_versions as versions

NAMES = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")
PACKAGE = "facenet-pytorch"
LICENSE = "MIT"
MODALITY = "face-detector"
MAX_ABS_DIFF = 1e-4
NORMALIZATION = (
    "none in the graph: the caller feeds RGB pixels resampled with torch's interpolate(mode='area') "
    "in float, then (x - 127.5) * 0.0078125, as facenet-pytorch's detect_face"
)

# name → (facenet-pytorch class, weight file, crop side or None for the fully convolutional P-net, outputs)
_NETS: dict[str, tuple[str, str, int | None, tuple[str, ...]]] = {
    "mtcnn-pnet": ("PNet", "pnet.pt", None, ("box_regression", "face_probability")),
    "mtcnn-rnet": ("RNet", "rnet.pt", 24, ("box_regression", "face_probability")),
    "mtcnn-onet": ("ONet", "onet.pt", 48, ("box_regression", "landmarks", "face_probability")),
}
_DESCRIPTIONS = {
    "mtcnn-pnet": "MTCNN stage 1 (proposal net), fully convolutional: per 12x12 window at stride 2, "
    "face probability and box regression.",
    "mtcnn-rnet": "MTCNN stage 2 (refine net) on 24x24 crops: face probability and box regression.",
    "mtcnn-onet": "MTCNN stage 3 (output net) on 48x48 crops: face probability, box regression and "
    "5 landmarks (eyes, nose, mouth corners).",
}


def package_dir() -> Path:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("facenet-pytorch is needed to import MTCNN: pip install --no-deps facenet-pytorch==2.6.0")
    return Path(next(iter(spec.submodule_search_locations)))


def weights_path(name: str) -> Path:
    return package_dir() / "data" / _NETS[name][1]


def load_net(name: str):
    """The pretrained torch module of ``name`` (one of :data:`NAMES`), in eval mode."""
    from export.importers.torchvision_stub import ensure_torchvision

    ensure_torchvision()  # facenet_pytorch.models.mtcnn imports torchvision at module level
    from facenet_pytorch.models import mtcnn

    return getattr(mtcnn, _NETS[name][0])(pretrained=True).eval()


def input_shape(name: str) -> list[int]:
    side = _NETS[name][2]
    return [-1, 3, -1, -1] if side is None else [-1, 3, side, side]


def export_graph(module, name: str, path: Path) -> Path:
    import torch

    from export.onnx_export import export_onnx

    side = _NETS[name][2] or 31
    outputs = _NETS[name][3]
    image_axes = {0: "batch"} if _NETS[name][2] else {0: "batch", 2: "height", 3: "width"}
    map_axes = {0: "batch"} if _NETS[name][2] else {0: "batch", 2: "rows", 3: "columns"}
    return export_onnx(
        module,
        (torch.rand(2, 3, side, side) * 2 - 1,),
        path,
        input_names=["image"],
        output_names=list(outputs),
        dynamic_axes={"image": image_axes, **{o: map_axes for o in outputs}},
    )


def _parity_inputs(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Random normalised images: several batch sizes, and for P-net several odd and even sizes."""
    side = _NETS[name][2]
    shapes = (
        [(1, 12, 12), (2, 13, 17), (1, 37, 53), (3, 64, 48), (1, 161, 120)]
        if side is None
        else [(1, side, side), (2, side, side), (7, side, side), (32, side, side)]
    )
    return [rng.uniform(-1, 1, (b, 3, h, w)).astype(np.float32) for b, h, w in shapes]


def measure_parity(module, name: str, candidate: Path) -> Parity:
    """Torch module vs the ONNX graph, every output, per batch row; fails above :data:`MAX_ABS_DIFF`."""
    import torch

    session = onnx_session(candidate, threads=1)

    def pairs():
        for image in _parity_inputs(name, np.random.default_rng(0)):
            with torch.no_grad():
                reference = [t.numpy() for t in module(torch.from_numpy(image))]
            for ref, got in zip(reference, session.run(None, {"image": image}), strict=True):
                yield ref.reshape(len(image), -1), got.reshape(len(image), -1)

    return require(compare(f"{name.removeprefix('mtcnn-')} outputs", pairs()), max_abs_diff=MAX_ABS_DIFF)


def _outputs(name: str) -> list[TensorSpec]:
    side = _NETS[name][2]
    widths = {"box_regression": 4, "landmarks": 10, "face_probability": 2}
    return [
        tensor(o, "float32", [-1, widths[o], -1, -1] if side is None else [-1, widths[o]], o.replace("_", "-"))
        for o in _NETS[name][3]
    ]


def stage(version_dir: Path, version: int, name: str) -> FaceDetectorCard:
    """Export ``name`` into ``version_dir``, check parity, and return its card."""
    module = load_net(name)
    target = export_graph(module, name, version_dir / "model.onnx")
    parity = measure_parity(module, name, target)
    side = _NETS[name][2]
    return FaceDetectorCard(
        name=name,
        version=version,
        description=_DESCRIPTIONS[name] + " Weights of facenet-pytorch (MTCNN, Zhang et al. 2016); the pyramid, "
        "NMS, box regression and landmarks run in the gateway (serving/vision/mtcnn.py).",
        inputs=[tensor("image", "float32", input_shape(name), "image")],
        outputs=_outputs(name),
        image=ImageSpec(
            size=(-1, -1) if side is None else (side, side),
            layout="NCHW",
            dtype="float32",
            channels="RGB",
            normalization=NORMALIZATION,
        ),
        provenance=ImportProvenance(
            package=PACKAGE,
            package_version=metadata.version(PACKAGE),
            license=LICENSE,
            source_file=f"facenet_pytorch/data/{_NETS[name][1]}",
            source_sha256=sha256_file(weights_path(name)),
        ),
        parity=ParitySection(
            reference=f"facenet_pytorch.models.mtcnn.{_NETS[name][0]} (torch, CPU), random inputs",
            checks=[parity.card_check()],
        ),
    )


def build_mtcnn(models_dir: Path, *, force: bool = False) -> list[Path]:
    """Stage and publish v1 of the three nets (those missing, or all with ``force``); prints parity."""
    from export.pipeline import export_version

    models_dir.mkdir(parents=True, exist_ok=True)
    published = []
    for name in NAMES:
        if versions(models_dir, name) and not force:
            continue
        print(f"{name}: exporting; parity against facenet-pytorch")
        published.append(
            export_version(models_dir, name, 1, functools.partial(stage, version=1, name=name), replace=True)
        )
    return published
