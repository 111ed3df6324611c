"""Teacher-assisted mini-batch sampling for blind distillation, face → voice (METHODS §8).

A frozen face model (the teacher) never gives the voice student a target: it only decides which
clips go into a mini-batch together. The pieces, each a pure function so that the properties
METHODS §8 states can be tested on them directly:

- ``track_embedding``: a clip's teacher embedding, the normalised mean of its track's
  normalised frame embeddings; ``teacher_embeddings`` runs any face embedder callable over the
  clips' frames (the served dlib ResNet, a trained face model, or ``oracle_embeddings``);
- ``neighbour_table``: offline, each clip's top-K teacher neighbours, above τ_pos and (the
  cross-video constraint) from a different video;
- ``screen_anchors``: per batch, anchors whose pairwise teacher similarity is below τ_neg, so
  that no two pseudo-classes are one person;
- ``TeacherRegressionLoss``: the regression baseline (the student regresses onto the teacher
  through a linear map), which the method replaces.

The batches themselves (anchors + N−1 neighbours, random crops) are
``training.data.teacher_batches.TeacherBatches``; the loss is GCL's (``generalized_contrastive``)
with one key per pseudo-class, which with N = 2 is the AP loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.losses.result import LossOutput

# A face embedder: uint8 RGB chips [F, H, W, 3] → embeddings [F, D] (any scale: normalised here).
FaceEmbedder = Callable[[np.ndarray], np.ndarray]


def _unit(x: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def track_embedding(frame_embeddings: np.ndarray) -> np.ndarray:
    """[F, D] frame embeddings → [D]: the normalised mean of the normalised frame embeddings."""
    if frame_embeddings.ndim != 2 or frame_embeddings.shape[0] == 0:
        raise ValueError(f"expected [frames >= 1, D] embeddings, got {frame_embeddings.shape}")
    return _unit(_unit(frame_embeddings.astype(np.float64)).mean(axis=0))


def load_chips(paths: Sequence[Path]) -> np.ndarray:
    """uint8 RGB [F, H, W, 3] from image files (all one size)."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def teacher_embeddings(frame_lists: Sequence[Sequence[Path]], embed: FaceEmbedder) -> np.ndarray:
    """One teacher embedding per clip: float32 [C, D], rows unit length (``track_embedding``)."""
    rows = [track_embedding(np.asarray(embed(load_chips(frames)), dtype=np.float64)) for frames in frame_lists]
    return np.stack(rows).astype(np.float32)


def oracle_embeddings(identities: Sequence[str]) -> np.ndarray:
    """The oracle teacher: one-hot identity vectors [C, #identities] (cosine 1 same person, 0 else)."""
    names = sorted(set(identities))
    position = {n: k for k, n in enumerate(names)}
    out = np.zeros((len(identities), len(names)), dtype=np.float32)
    out[np.arange(len(identities)), [position[i] for i in identities]] = 1.0
    return out


def cosine_matrix(teacher: np.ndarray) -> np.ndarray:
    """[C, D] → [C, C] cosine similarities."""
    unit = _unit(teacher.astype(np.float64))
    return unit @ unit.T


def neighbour_table(
    teacher: np.ndarray, videos: Sequence[str], *, k: int, tau_pos: float | None = 0.5, cross_video: bool = True
) -> list[np.ndarray]:
    """Each clip's top-``k`` teacher neighbours (clip positions, most similar first).

    Never the clip itself; with ``cross_video`` never a clip of its own video; with ``tau_pos``
    only clips whose cosine is above it. Ties keep the lower position first (stable sort), so
    the table is a function of its inputs alone.
    """
    if teacher.ndim != 2 or teacher.shape[0] != len(videos):
        raise ValueError(f"teacher must be [clips, D] with one row per video entry, got {teacher.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sims = cosine_matrix(teacher)
    video = np.asarray(videos)
    banned = video[:, None] == video[None, :] if cross_video else np.eye(len(videos), dtype=bool)
    np.fill_diagonal(banned, True)
    if tau_pos is not None:
        banned |= sims <= tau_pos
    table = []
    for i in range(len(videos)):
        allowed = np.flatnonzero(~banned[i])
        order = np.argsort(-sims[i, allowed], kind="stable")
        table.append(allowed[order[:k]].astype(np.int64))
    return table


def screen_anchors(
    rng: np.random.Generator, sims: np.ndarray, candidates: np.ndarray, m: int, tau_neg: float | None
) -> np.ndarray:
    """Up to ``m`` anchors from ``candidates`` in a random order.

    With ``tau_neg`` (screening) a candidate is taken only if its teacher cosine to every anchor
    already taken is below ``tau_neg``; without it the first ``m`` of the order are taken. May
    return fewer than ``m`` when the candidates run out.
    """
    order = candidates[rng.permutation(candidates.size)]
    if tau_neg is None:
        return order[:m]
    taken: list[int] = []
    for c in order.tolist():
        if not taken or float(sims[c, taken].max()) < tau_neg:
            taken.append(c)
            if len(taken) == m:
                break
    return np.array(taken, dtype=np.int64)


class TeacherRegressionLoss(nn.Module):
    """The regression baseline: student [N, D] → linear map → cosine distance to the teacher [N, Dt].

    ``L = mean_i (1 − cos(W s_i, t_i))``; metric ``cosine`` (the mean cosine reached).
    """

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        if student_dim < 1 or teacher_dim < 1:
            raise ValueError(f"dimensions must be >= 1, got {student_dim}, {teacher_dim}")
        self.project = nn.Linear(student_dim, teacher_dim)

    def forward(self, student: Tensor, teacher: Tensor) -> LossOutput:
        if student.dim() != 2 or teacher.dim() != 2 or student.shape[0] != teacher.shape[0]:
            raise ValueError(f"expected [N, D] and [N, Dt], got {tuple(student.shape)}, {tuple(teacher.shape)}")
        cos = F.cosine_similarity(self.project(student), teacher.to(student.dtype), dim=1)
        with torch.no_grad():
            mean_cos = float(cos.mean())
        return LossOutput(loss=(1.0 - cos).mean(), metrics={"cosine": mean_cos})


def write_teacher_file(records: Sequence, manifest: Path, out: Path, embed: FaceEmbedder) -> Path:
    """Embed every clip of ``records`` (``clip``/``frames`` extras) and save ``out`` (.npz: clips, embeddings)."""
    from training.data.av_corpus import clip_frames

    embeddings = teacher_embeddings([clip_frames(r, manifest) for r in records], embed)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, clips=np.array([str(r.extra["clip"]) for r in records]), embeddings=embeddings)
    return out


def load_teacher_file(path: Path, records: Sequence) -> np.ndarray:
    """The rows of a ``write_teacher_file`` output for ``records``, in their order [C, D]."""
    with np.load(path) as data:
        row = {str(c): k for k, c in enumerate(data["clips"].tolist())}
        embeddings = data["embeddings"]
    missing = [str(r.extra["clip"]) for r in records if str(r.extra["clip"]) not in row]
    if missing:
        raise ValueError(f"{path} has no teacher embedding for {len(missing)} clips, first {missing[0]}")
    return embeddings[[row[str(r.extra["clip"])] for r in records]].astype(np.float32)
