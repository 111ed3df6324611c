"""Audio-visual recipes (METHODS §8): a voice student trained by a face teacher's batch choices.

Data is a clip manifest without identities (``training.data.av_corpus`` builds the generated
one, ``av_voxceleb`` reads VoxCeleb2 dev) and a teacher file (``data.teacher``: one face-teacher
embedding per clip, written by ``export.xmodal_teacher.write_dlib_teacher`` or any
``write_teacher_file``). The recipes of the method and its baselines differ only in ``method``:

- ``teacher`` — anchors screened by ``tau_neg`` (``screen``), N−1 of each anchor's top-``k``
  neighbours above ``tau_pos`` from other videos (``cross_video``), GCL over the pseudo-classes;
  ``teacher: oracle`` makes the same sampler use one-hot identities from the oracle file (the
  oracle-labels baseline: its batches are the supervised ones);
- ``unsupervised`` — GCL over two crops of one clip (instance discrimination: no teacher);
- ``regression`` — the student regresses onto the teacher embedding through a linear map.

Evaluation: speaker EER of the student on every pair of clips of the test identities (the
oracle file says who is who; only evaluation reads it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from training.data.manifest import ManifestRecord, read_manifest
from training.losses.result import LossOutput
from training.trainer.config import TrainerConfig


@dataclass(frozen=True)
class GeneratedAV:
    """``build_av_corpus`` arguments (built once, then cached)."""

    out: str = "build/av-corpus"
    identities: int = 100
    videos_per_identity: int = 4
    clips_per_video: int = 2
    frames_per_clip: int = 4
    size: int = 150  # dlib's chip, so that the served teacher sees what it was trained on
    seed: int = 0
    split_fractions: tuple[float, float] = (0.15, 0.25)


@dataclass(frozen=True)
class AVData:
    manifest: str | None = None
    synthetic: GeneratedAV | None = None
    teacher: str | None = None  # the face-teacher .npz (``write_teacher_file``), one row per clip
    sample_rate: int = 16000
    cache_audio: bool = True
    eval_split: str = "test"
    trials: str | None = None  # an official trial list (e.g. Vox1-O veri_test2.txt) instead of eval_split pairs
    trials_root: str | None = None  # the wav root the trial list's paths are relative to
    max_eval_trials: int = 200_000

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.synthetic is None):
            raise ValueError("set exactly one of data.manifest and data.synthetic")


@dataclass(frozen=True)
class AVMethod:
    name: Literal["teacher", "unsupervised", "regression"] = "teacher"
    teacher: Literal["face", "oracle"] = "face"  # face: data.teacher's file; oracle: the identities
    # Toitsu's choice: subtract the training clips' mean face embedding before the cosines. dlib's
    # descriptors are not centred (two strangers score ≈ 0.9), so τ_pos / τ_neg on raw cosines
    # would separate nothing; centred, strangers sit near 0 and one person mostly above 0.5.
    centre_teacher: bool = True
    k: int = 5
    tau_pos: float | None = 0.5
    tau_neg: float | None = 0.4
    cross_video: bool = True
    screen: bool = True
    loss: dict[str, Any] = field(default_factory=dict)  # GCL arguments (form, symmetric, …)


@dataclass(frozen=True)
class AVSampler:
    classes_per_batch: int = 200  # M pseudo-classes (or clips, for the baselines)
    per_class: int = 2  # N
    crop_seconds: float = 2.0


@dataclass(frozen=True)
class AudioVisualRecipe:
    trainer: TrainerConfig
    data: AVData
    model: dict[str, Any]  # the speaker encoder: {name: ecapa_tdnn | resnet34, ...}
    method: AVMethod = field(default_factory=AVMethod)
    sampler: AVSampler = field(default_factory=AVSampler)
    augment: dict[str, Any] | None = None
    export_name: str = "toitsu-speaker-xmodal"
    kind: Literal["audio-visual"] = "audio-visual"


def manifest_path(data: AVData) -> Path:
    if data.synthetic is not None:
        from training.data.av_corpus import build_av_corpus

        s = data.synthetic
        return build_av_corpus(
            s.out,
            identities=s.identities,
            videos_per_identity=s.videos_per_identity,
            clips_per_video=s.clips_per_video,
            frames_per_clip=s.frames_per_clip,
            size=s.size,
            seed=s.seed,
            split_fractions=s.split_fractions,
            sample_rate=data.sample_rate,
        )
    assert data.manifest is not None
    return Path(data.manifest)


def teacher_rows(recipe: AudioVisualRecipe, manifest: Path, records: list[ManifestRecord]) -> np.ndarray:
    """The teacher embedding of each record: the oracle's one-hots, the teacher file's rows, or
    (unsupervised, which has no teacher) zeros."""
    from training.data.av_corpus import read_oracle
    from training.methods.teacher_sampling import load_teacher_file, oracle_embeddings

    if recipe.method.name == "unsupervised":
        return np.zeros((len(records), 1), dtype=np.float32)
    if recipe.method.teacher == "oracle":
        oracle = read_oracle(manifest)
        return oracle_embeddings([oracle[str(r.extra["clip"])] for r in records])
    if recipe.data.teacher is None:
        raise ValueError("method.teacher 'face' needs data.teacher, a teacher file (export.xmodal_teacher)")
    return load_teacher_file(Path(recipe.data.teacher), records)


def build_modules(recipe: AudioVisualRecipe, teacher_dim: int = 128) -> dict[str, nn.Module]:
    from training.methods import GeneralizedContrastiveLoss
    from training.methods.teacher_sampling import TeacherRegressionLoss
    from training.models import build_speaker_encoder

    kwargs = dict(recipe.model)
    encoder = build_speaker_encoder(kwargs.pop("name"), **kwargs)
    if recipe.method.name == "regression":
        return {"encoder": encoder, "loss": TeacherRegressionLoss(int(encoder.embedding_dim), teacher_dim)}
    return {"encoder": encoder, "loss": GeneralizedContrastiveLoss(**recipe.method.loss)}


def build_batches(recipe: AudioVisualRecipe, records: list[ManifestRecord], teacher: np.ndarray, *, rank: int):
    """The step-indexed batches of the recipe's method over the ``train`` clips."""
    from training.data.audio_store import AudioStore
    from training.data.augment import Augmenter
    from training.data.speaker_batches import PairBatches
    from training.data.teacher_batches import RegressionBatches, TeacherBatches

    s, m = recipe.sampler, recipe.method
    keep = [i for i, r in enumerate(records) if r.split == "train"]
    train, rows = [records[i] for i in keep], teacher[keep]
    if m.teacher == "face" and m.centre_teacher:
        rows = rows - rows.mean(axis=0, keepdims=True)
    store = AudioStore(train, recipe.data.sample_rate, cache=recipe.data.cache_audio)
    common: dict[str, Any] = {
        "crop_seconds": s.crop_seconds,
        "augment": Augmenter.from_config(recipe.augment, recipe.data.sample_rate),
        "seed": recipe.trainer.seed,
        "rank": rank,
        "steps": recipe.trainer.steps,
    }
    if m.name == "unsupervised":
        return PairBatches(train, store, pairs_per_batch=s.classes_per_batch, mode="unsupervised", **common)
    if m.name == "regression":
        return RegressionBatches(train, store, rows, clips_per_batch=s.classes_per_batch, **common)
    return TeacherBatches(
        train, store, rows, classes_per_batch=s.classes_per_batch, per_class=s.per_class, k=m.k,
        tau_pos=m.tau_pos, tau_neg=m.tau_neg, cross_video=m.cross_video, screen=m.screen, **common,
    )  # fmt: skip


def regression_step(modules: Mapping[str, nn.Module], batch: dict[str, Any]) -> LossOutput:
    student = modules["encoder"](batch["audio"], batch["lengths"]).float()
    return modules["loss"](student, batch["teacher"])


def items_in(batch: dict[str, Any]) -> int:
    return int((batch["anchor"] if "anchor" in batch else batch["audio"]).shape[0])


def train_av_recipe(recipe: AudioVisualRecipe, run_dir: Path, *, resume: bool = True, evaluate: bool = True) -> dict:
    """Train, evaluate on the held-out identities and write ``run_dir/run.json``; returns it."""
    from training.recipes.config import run_identity
    from training.recipes.speaker_training import gcl_step
    from training.trainer import Trainer
    from training.trainer.distributed import cleanup_distributed, init_distributed
    from training.trainer.rng import seed_everything

    dist = init_distributed(recipe.trainer.device)
    manifest = manifest_path(recipe.data)
    records = read_manifest(manifest)
    teacher = teacher_rows(recipe, manifest, records)
    batches = build_batches(recipe, records, teacher, rank=dist.rank)
    seed_everything(recipe.trainer.seed)  # the same initial student for every method
    modules = build_modules(recipe, int(teacher.shape[1]))
    step: Callable[..., Any] = regression_step if recipe.method.name == "regression" else gcl_step
    trainer = Trainer(recipe.trainer, modules, step, batches, run_dir, identity=run_identity(recipe),
                      items_per_batch=items_in, dist=dist, resume=resume)  # fmt: skip
    result = trainer.fit()
    run: dict[str, Any] = {"data_manifest": str(manifest), "step": result.step, "wall_time_s": result.wall_time_s,
                           "items_per_s": result.items_per_s, "metrics": result.metrics}  # fmt: skip
    if dist.is_main:
        if evaluate:
            run["eval"] = evaluate_student(modules["encoder"], recipe, manifest, run_dir / "eval", name=run_dir.name)
        (run_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    cleanup_distributed()
    return run


def evaluate_student(encoder: nn.Module, recipe: AudioVisualRecipe, manifest: Path, out_dir: Path, *, name: str):
    """Speaker EER/minDCF on ``data.trials``, else every pair of ``data.eval_split`` clips (identities
    from the oracle)."""
    import dataclasses

    from training.data.av_corpus import read_oracle
    from training.evaluation.speaker_eval import TrialLike, evaluate_encoder, pair_trials

    trials: Sequence[TrialLike]
    if recipe.data.trials:
        from training.data.voxceleb import read_trial_list

        trials = read_trial_list(Path(recipe.data.trials), Path(recipe.data.trials_root or "."))
    else:
        oracle = read_oracle(manifest)
        labelled = [dataclasses.replace(r, identity=oracle[str(r.extra["clip"])]) for r in read_manifest(manifest)]
        trials = pair_trials(labelled, recipe.data.eval_split)
    trials = trials[: recipe.data.max_eval_trials]
    if not trials:
        raise ValueError(f"no evaluation trials: the manifest has no {recipe.data.eval_split!r} clips")
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        report = evaluate_encoder(
            encoder, trials, out_dir, name=name, sample_rate=recipe.data.sample_rate, device=device
        )
    encoder.train(was_training)
    return report


def evaluate_run(recipe: AudioVisualRecipe, run_dir: Path | None, out_dir: Path, *, name: str) -> dict:
    """The report of a run's student, or (``run_dir`` None) of the untrained one."""
    from training.trainer.checkpoint import latest_checkpoint, load_checkpoint
    from training.trainer.rng import seed_everything

    seed_everything(recipe.trainer.seed)
    encoder = build_modules(recipe)["encoder"]
    if run_dir is not None:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint")
        encoder.load_state_dict(load_checkpoint(checkpoint)["modules"]["encoder"])
    return evaluate_student(encoder.eval(), recipe, manifest_path(recipe.data), out_dir, name=name)
