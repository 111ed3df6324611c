"""The served face model as the blind-distillation teacher (METHODS §8), written to a teacher file.

Training never imports export (DESIGN §1), so the face embedder lives here: dlib's ResNet, the
served default (``models/dlib-resnet-v1``), as its torch port (parity with the served ONNX graph
and with dlib itself ≤ 1e-4, enforced at export: ``export.importers.dlib_resnet``). Chips of
another size are resized to dlib's 150 px first. ``write_dlib_teacher`` embeds every clip of an
audio-visual manifest (``training.data.av_corpus`` / ``av_voxceleb``) into the .npz a recipe's
``data.teacher`` names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from export.importers.dlib_resnet import CHIP_SIZE, build_torch, parse_resnet, source_path
from training.data.manifest import read_manifest
from training.methods.teacher_sampling import FaceEmbedder, write_teacher_file


def dlib_face_embedder(batch: int = 32) -> FaceEmbedder:
    """uint8 RGB chips [F, H, W, 3] → dlib descriptors float32 [F, 128]."""
    module = build_torch(parse_resnet(source_path())).eval()

    @torch.no_grad()
    def embed(chips: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(chips))
        if x.shape[1:3] != (CHIP_SIZE, CHIP_SIZE):
            size = (CHIP_SIZE, CHIP_SIZE)
            x = F.interpolate(x.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", align_corners=False)
            x = x.round().clamp(0, 255).permute(0, 2, 3, 1)
        return torch.cat([module(x[i : i + batch]) for i in range(0, x.shape[0], batch)]).numpy()

    return embed


def write_dlib_teacher(manifest: Path, out: Path) -> Path:
    """The dlib teacher file of every clip in ``manifest``."""
    return write_teacher_file(read_manifest(manifest), manifest, out, dlib_face_embedder())
