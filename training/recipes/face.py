"""Face recipes (METHODS §5): graph grouping loss vs the pairwise GCL baseline on face tracks.

A face recipe is ``kind: face`` (``toitsu train`` dispatches on it) and trains ``model`` (an
``training.models.iresnet.IResNet``; chips uint8 NHWC in, normalisation inside) with ``method``:

- ``{name: graph_grouping, form: walk, steps: T}`` or ``{name: graph_grouping, form: ncut}``
  (``training.methods.graph_grouping``) on each batch's G groups × K frames;
- ``{name: gcl, form: sigmoid}`` — the baseline, GCL's pairwise form (``form: cross`` is the
  softmax form) on **the same batches**: the K frames of a group are split into two views
  (frames 0 … K/2−1 are anchors, K/2 … K−1 positives, so K must be even) and the keys are the
  group ids, so every cross-view pair of a group is a positive (``training.methods.
  generalized_contrastive``).

Everything else (data, batches, encoder, optimiser, steps, seed, ``s = w·cos + b`` with w = 10,
b = −5 at start) is shared, so two recipes that differ only in ``method`` compare the losses.
``data.group_by``: ``identity`` (supervised) or ``track`` (unsupervised: identities unused).

Data: ``data.synthetic`` renders the packaged-photo track corpus in memory
(``training.data.face_tracks.render_face_tracks``: chips of ``dlib_alignment(data.size)``, the
geometry the exported card declares and the gateway cuts) or ``data.manifest`` names a manifest
of face frames (``build_face_tracks``, the same chips; or the YouTube Faces / VoxCeleb layouts of
``training.data.face_layouts``, used as they come, not re-aligned) whose rows are split
``train`` / ``heldout``.

Evaluation (``evaluate_face``) on held-out identities: every pair of frames from **different
tracks** is a trial (same identity = target; same-track pairs are left out because they share
pose and lighting); EER overall, on low-quality vs low-quality pairs and on high vs high. Runs
write ``recipe.yaml``, ``checkpoints/``, ``metrics.jsonl``, ``run.json`` and ``eval/report.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from training.trainer.config import TrainerConfig

# A face recipe's method.name → the seed method (training.methods.METHODS) it trains with.
METHOD_KEYS: dict[str, str] = {"graph_grouping": "graph_grouping", "gcl": "generalized_contrastive"}


@dataclass(frozen=True)
class FaceCorpus:
    """``training.data.face_tracks.render_face_tracks`` arguments (the corpus is rendered in memory)."""

    identities: int = 102
    tracks_per_identity: int = 4
    frames_per_track: int = 8
    heldout_fraction: float = 0.3
    seed: int = 0


@dataclass(frozen=True)
class FaceData:
    """Exactly one of ``synthetic`` and ``manifest``; batches of ``groups_per_batch`` ×
    ``frames_per_group`` chips of ``size`` pixels; ``max_eval_frames`` caps the held-out frames
    (taken track by track in order, so whole tracks)."""

    synthetic: FaceCorpus | None = None
    manifest: str | None = None
    size: int = 112
    group_by: Literal["identity", "track"] = "identity"
    groups_per_batch: int = 16
    frames_per_group: int = 4
    flip: bool = True
    max_eval_frames: int = 4000

    def __post_init__(self) -> None:
        if (self.synthetic is None) == (self.manifest is None):
            raise ValueError("set exactly one of data.synthetic and data.manifest")
        if self.groups_per_batch < 2 or self.frames_per_group < 2:
            raise ValueError("data.groups_per_batch and data.frames_per_group must be >= 2")


@dataclass(frozen=True)
class FaceRecipe:
    trainer: TrainerConfig
    data: FaceData
    model: dict[str, Any]  # {name: iresnet, ...IResNet arguments}
    method: dict[str, Any]  # {name: graph_grouping | gcl, ...loss arguments}
    kind: Literal["face"] = "face"
    export_name: str = "toitsu-face"

    def __post_init__(self) -> None:
        if self.method.get("name") not in METHOD_KEYS:
            raise ValueError(f"method.name must be one of {', '.join(METHOD_KEYS)}, got {self.method.get('name')!r}")
        if self.method["name"] == "gcl" and self.data.frames_per_group % 2:
            raise ValueError("method gcl splits each group's frames into two views: data.frames_per_group must be even")
        if self.model.get("name") != "iresnet":
            raise ValueError(f"model.name must be 'iresnet', got {self.model.get('name')!r}")


@dataclass
class TrainedFaceEncoder:
    """What ``toitsu export`` needs from a face run."""

    encoder: nn.Module
    image_size: int
    embedding_dim: int
    step: int
    export_name: str
    provenance: dict[str, Any]


# ------------------------------------------------------------------------------ building


def build_face_model(recipe: FaceRecipe) -> nn.Module:
    from training.models.iresnet import IResNet

    kwargs = {k: v for k, v in recipe.model.items() if k != "name"}
    kwargs.setdefault("input_size", recipe.data.size)
    if kwargs["input_size"] != recipe.data.size:
        raise ValueError(f"model.input_size={kwargs['input_size']} disagrees with data.size={recipe.data.size}")
    return IResNet(**kwargs)


def build_face_loss(recipe: FaceRecipe) -> nn.Module:
    """The loss module of ``recipe.method`` (its other keys are the constructor's arguments)."""
    from training.methods import METHODS

    kwargs = dict(recipe.method)
    name = kwargs.pop("name")
    if name == "gcl":
        kwargs.setdefault("form", "sigmoid")  # the METHODS §5 baseline is GCL's pairwise form
    return METHODS[METHOD_KEYS[name]].build(**kwargs)


def build_modules(recipe: FaceRecipe) -> dict[str, nn.Module]:
    """``{"encoder", "loss"}`` of the recipe (both depend on the recipe alone)."""
    return {"encoder": build_face_model(recipe), "loss": build_face_loss(recipe)}


def face_tracks(data: FaceData):
    """The recipe's corpus as ``FaceTracks`` (rendered, or loaded from the manifest) and its source."""
    from training.data import face_tracks as ft

    if data.synthetic is not None:
        s = data.synthetic
        tracks = ft.render_face_tracks(
            identities=s.identities,
            tracks_per_identity=s.tracks_per_identity,
            frames_per_track=s.frames_per_track,
            size=data.size,
            seed=s.seed,
            heldout_fraction=s.heldout_fraction,
        )
        return tracks, {
            "synthetic": {
                "identities": s.identities,
                "tracks_per_identity": s.tracks_per_identity,
                "frames_per_track": s.frames_per_track,
                "seed": s.seed,
            }
        }
    from training.recipes.speaker import file_sha256

    assert data.manifest is not None  # FaceData holds exactly one of synthetic and manifest
    path = Path(data.manifest)
    return ft.load_face_tracks(path, data.size), {"data_manifest": str(path), "data_manifest_sha256": file_sha256(path)}


def build_face_batches(recipe: FaceRecipe, train, *, rank: int):
    from training.data.face_tracks import GroupBatches

    d, t = recipe.data, recipe.trainer
    return GroupBatches(
        train,
        group_by=d.group_by,
        groups_per_batch=d.groups_per_batch,
        frames_per_group=d.frames_per_group,
        seed=t.seed,
        rank=rank,
        steps=t.steps,
        flip=d.flip,
    )


# --------------------------------------------------------------------------- step and run


def graph_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
    return modules["loss"](modules["encoder"](batch["images"]).float(), batch["groups"])


def make_gcl_step(frames_per_group: int):
    """GCL on a group-major batch: the first half of each group's frames are anchors, the second
    half positives; key = group id, so all cross-view pairs of a group are positives."""
    half = frames_per_group // 2

    def gcl_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]):
        emb = modules["encoder"](batch["images"]).float()
        views = emb.reshape(-1, frames_per_group, emb.shape[-1])
        keys = batch["groups"].reshape(-1, frames_per_group)[:, :half].reshape(-1)
        return modules["loss"](
            views[:, :half].reshape(-1, emb.shape[-1]), views[:, half:].reshape(-1, emb.shape[-1]), keys
        )

    return gcl_step


def train_face_recipe(
    recipe: FaceRecipe, run_dir: Path, *, resume: bool = True, evaluate: bool = True
) -> dict[str, Any]:
    """Train, evaluate on held-out identities and write ``run_dir/run.json``; returns its content."""
    from training.recipes.config import run_identity
    from training.trainer import Trainer
    from training.trainer.distributed import cleanup_distributed, init_distributed
    from training.trainer.rng import seed_everything

    run_dir, identity = Path(run_dir), run_identity(recipe)
    dist = init_distributed(recipe.trainer.device)
    tracks, source = face_tracks(recipe.data)
    train, heldout = tracks.subset("train"), tracks.subset("heldout")
    if not len(train):
        raise ValueError("the face corpus has no 'train' frames")
    batches = build_face_batches(recipe, train, rank=dist.rank)
    seed_everything(recipe.trainer.seed)  # the same initial weights for every method
    modules = build_modules(recipe)
    encoder = modules["encoder"]
    step = graph_step if recipe.method["name"] == "graph_grouping" else make_gcl_step(recipe.data.frames_per_group)
    trainer = Trainer(
        recipe.trainer,
        modules,
        step,
        batches,
        run_dir,
        identity=identity,
        items_per_batch=lambda b: int(b["images"].shape[0]),
        dist=dist,
        resume=resume,
    )
    result = trainer.fit()
    run: dict[str, Any] = {
        "recipe_hash": identity.recipe_hash,
        "kind": "face",
        **source,
        "step": result.step,
        "wall_time_s": result.wall_time_s,
        "steps_per_s": result.steps_per_s,
        "items_per_s": result.items_per_s,
        "metrics": result.metrics,
        "train_frames": len(train),
        "train_groups": int(batches.group_ids.size),
        "heldout_frames": len(heldout),
    }
    if dist.is_main:
        if evaluate:
            run["eval"] = evaluate_face(
                encoder, heldout, run_dir / "eval", name=run_dir.name, max_frames=recipe.data.max_eval_frames
            )
        (run_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    cleanup_distributed()
    return run


# ------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def embed_chips(encoder: nn.Module, chips: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """uint8 [N, H, W, 3] → L2-normalised float32 [N, D] (eval mode)."""
    device = next(encoder.parameters()).device
    encoder.eval()
    out = [
        nn.functional.normalize(encoder(torch.from_numpy(chips[i : i + batch_size]).to(device)).float(), dim=1)
        .cpu()
        .numpy()
        for i in range(0, len(chips), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def cross_track_eers(
    embeddings: np.ndarray, identity: np.ndarray, track: np.ndarray, low_quality: np.ndarray | None
) -> dict[str, Any]:
    """EER over every pair of frames from different tracks (target: same identity), overall and,
    with quality labels, on low vs low and high vs high pairs. embeddings [F, D] unit length."""
    from training.evaluation.verification import eer

    i, j = np.triu_indices(len(embeddings), k=1)
    keep = track[i] != track[j]
    i, j = i[keep], j[keep]
    scores = np.einsum("nd,nd->n", embeddings[i], embeddings[j])
    target = identity[i] == identity[j]
    subsets = {"overall": np.ones_like(target)}
    if low_quality is not None:
        subsets.update(low_low=low_quality[i] & low_quality[j], high_high=~low_quality[i] & ~low_quality[j])
    out: dict[str, Any] = {}
    for name, mask in subsets.items():
        t = target[mask]
        ok = t.any() and (~t).any()
        out[name] = {
            "eer": eer(scores[mask], t)[0] if ok else None,
            "targets": int(t.sum()),
            "nontargets": int((~t).sum()),
        }
    return out


def evaluate_face(encoder: nn.Module, heldout, out_dir: Path, *, name: str, max_frames: int = 4000) -> dict[str, Any]:
    """EERs of ``cross_track_eers`` on held-out ``FaceTracks``; writes ``out_dir/report.json``."""
    if not len(heldout):
        raise ValueError("no held-out frames to evaluate on")
    n = min(len(heldout), max_frames)
    embeddings = embed_chips(encoder, heldout.frames[:n])
    result = cross_track_eers(
        embeddings, heldout.identity[:n], heldout.track[:n], heldout.low_quality[:n] if heldout.has_quality else None
    )
    report = {
        "name": name,
        "frames": n,
        "identities": int(np.unique(heldout.identity[:n]).size),
        "low_quality_frames": int(heldout.low_quality[:n].sum()) if heldout.has_quality else None,
        "eer": result["overall"]["eer"],
        "eer_low_low": (result.get("low_low") or {}).get("eer"),
        "eer_high_high": (result.get("high_high") or {}).get("eer"),
        "pairs": result,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def evaluate_run(recipe: FaceRecipe, run_dir: Path | None, out_dir: Path, *, name: str) -> dict[str, Any]:
    """``evaluate_face`` of a run's encoder on the recipe's held-out tracks; with ``run_dir`` None,
    of the recipe's untrained encoder, seeded as ``train_face_recipe`` seeds it."""
    from training.trainer.rng import seed_everything

    if run_dir is None:
        seed_everything(recipe.trainer.seed)  # the initial weights `toitsu train` starts from
        encoder = build_face_model(recipe).eval()
    else:
        _, encoder, _, _ = load_face_run(run_dir)
    tracks, _ = face_tracks(recipe.data)
    return evaluate_face(encoder, tracks.subset("heldout"), out_dir, name=name, max_frames=recipe.data.max_eval_frames)


# ------------------------------------------------------------------------------ loading


def load_face_run(run_dir: Path) -> tuple[FaceRecipe, nn.Module, int, dict[str, Any]]:
    """(recipe, encoder in eval mode, step, run.json or {}) from a run's latest checkpoint."""
    from training.recipes.config import load_recipe
    from training.trainer.checkpoint import latest_checkpoint, load_checkpoint

    run_dir = Path(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml", schema=FaceRecipe)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint")
    state = load_checkpoint(checkpoint)
    encoder = build_face_model(recipe)
    encoder.load_state_dict(state["modules"]["encoder"])
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    return recipe, encoder.eval(), int(state["step"]), run


def load_trained_face_encoder(run_dir: Path) -> TrainedFaceEncoder:
    """The encoder of a face run and its provenance (recipe text and hash, data, method, eval)."""
    run_dir = Path(run_dir)
    recipe, encoder, step, run = load_face_run(run_dir)
    summary = {
        k: v
        for k, v in (run.get("eval") or {}).items()
        if k in ("frames", "identities", "eer", "eer_low_low", "eer_high_high")
    }
    method = dict(recipe.method)
    provenance = {
        "kind": "training",
        "run": str(run_dir),
        "step": step,
        "recipe": (run_dir / "recipe.yaml").read_text(),
        "config_hash": run.get("recipe_hash"),
        "data_manifest": run.get("data_manifest"),
        "data_manifest_sha256": run.get("data_manifest_sha256"),
        "synthetic": run.get("synthetic"),
        "model": recipe.model.get("name"),
        "method": ", ".join(f"{k}={v}" for k, v in method.items()),
        "group_by": recipe.data.group_by,
        "eval": summary or None,
        "license": "Apache-2.0",
    }
    return TrainedFaceEncoder(
        encoder, recipe.data.size, int(cast(int, encoder.embedding_dim)), step, recipe.export_name, provenance
    )
