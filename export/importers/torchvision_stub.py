"""A minimal stand-in for the two torchvision functions facenet-pytorch's MTCNN imports.

``facenet_pytorch/models/utils/detect_face.py`` (imported by ``facenet_pytorch.models.mtcnn``,
hence by ``PNet``/``RNet``/``ONet`` and the reference ``MTCNN.detect``) starts with
``from torchvision.transforms import functional as F`` and
``from torchvision.ops.boxes import batched_nms``. torchvision is not importable beside the torch
this project trains with (no wheel for it, or its C ops fail to load), and nothing else of
torchvision is used. :func:`ensure_torchvision` registers, **only when the real import fails**,
modules ``torchvision``, ``torchvision.ops``, ``torchvision.ops.boxes``,
``torchvision.transforms`` and ``torchvision.transforms.functional`` holding:

- ``batched_nms``: exact greedy NMS per class with torchvision's semantics — candidates in
  descending score order (stable sort, as torchvision's CPU kernel), IoU computed in the boxes'
  dtype with area = (x2 − x1)·(y2 − y1) (no +1), a box suppressed when its IoU with a kept box of
  the same class is > ``iou_threshold``; kept indices returned in descending score order;
- ``to_tensor``: HWC image → CHW float tensor (uint8 divided by 255), used only by ``extract_face``.

Everything else of the reference (pyramid, ``interpolate(mode="area")``, bbreg, rerec, pad, the
'Min' NMS of the last stage, which is facenet-pytorch's own numpy code) runs unchanged.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch

_MODULES = (
    "torchvision",
    "torchvision.ops",
    "torchvision.ops.boxes",
    "torchvision.transforms",
    "torchvision.transforms.functional",
)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of ``boxes`` [N, 4] (x1, y1, x2, y2) by ``scores`` [N]; kept indices [K] int64."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    order = torch.sort(scores, stable=True, descending=True)[1]
    keep = []
    while order.numel() > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]
    return torch.stack(keep).to(torch.int64)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each class of ``idxs`` [N]; kept indices [K] sorted by descending score."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    keep = torch.cat(
        [
            torch.nonzero(idxs == c).flatten()[nms(boxes[idxs == c], scores[idxs == c], iou_threshold)]
            for c in torch.unique(idxs)
        ]
    )
    return keep[torch.sort(scores[keep], stable=True, descending=True)[1]]


def to_tensor(pic) -> torch.Tensor:
    """torchvision's ``to_tensor`` for numpy arrays and PIL images: [H, W, C] → [C, H, W]."""
    array = np.asarray(pic)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor.to(torch.get_default_dtype()).div(255) if tensor.dtype == torch.uint8 else tensor


def ensure_torchvision() -> bool:
    """Make ``import torchvision.ops.boxes`` work; True when the stand-in was installed."""
    if getattr(sys.modules.get("torchvision"), "__toitsu_stub__", False):
        return True
    try:
        import torchvision.ops.boxes
        import torchvision.transforms.functional  # noqa: F401

        return False
    # Not installed (ImportError), or built for another torch: its C ops fail to load (OSError,
    # RuntimeError "operator torchvision::nms does not exist", AttributeError on a half-init module).
    except (ImportError, OSError, RuntimeError, AttributeError):
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    modules = {name: types.ModuleType(name) for name in _MODULES}
    modules["torchvision"].__toitsu_stub__ = True  # type: ignore[attr-defined]
    modules["torchvision.ops.boxes"].batched_nms = batched_nms  # type: ignore[attr-defined]
    modules["torchvision.ops.boxes"].nms = nms  # type: ignore[attr-defined]
    modules["torchvision.ops"].batched_nms = batched_nms  # type: ignore[attr-defined]
    modules["torchvision.ops"].nms = nms  # type: ignore[attr-defined]
    modules["torchvision.transforms.functional"].to_tensor = to_tensor  # type: ignore[attr-defined]
    for name, module in modules.items():
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
        sys.modules[name] = module
    return True
