"""The generated audio-visual corpus (METHODS §8): layout, blindness, splits, resume, and the
teacher-sampled loss falling on it."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data.audio_store import AudioStore
from training.data.augment import Augmenter
from training.data.av_corpus import build_av_corpus, clip_frames, oracle_path, read_oracle
from training.data.face_render import face_sources
from training.data.manifest import read_manifest
from training.data.teacher_batches import TeacherBatches
from training.methods.generalized_contrastive import GeneralizedContrastiveLoss, keys_for_batch
from training.methods.teacher_sampling import load_chips, teacher_embeddings

ARGS = {
    "identities": 4,
    "videos_per_identity": 3,
    "clips_per_video": 2,
    "frames_per_clip": 2,
    "size": 32,
    "seed": 5,
    "split_fractions": (0.25, 0.25),
    "effects": ("clean", "telephone", "noise_snr10"),
    "workers": 2,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_av_corpus(tmp_path_factory.mktemp("av") / "corpus", **ARGS)


def test_every_identity_has_its_videos_and_one_split(corpus: Path) -> None:
    records, oracle = read_manifest(corpus), read_oracle(corpus)
    assert len(records) == 4 * 3 * 2
    videos: dict[str, set[str]] = defaultdict(set)
    splits: dict[str, set[str]] = defaultdict(set)
    for r in records:
        who = oracle[r.extra["clip"]]
        videos[who].add(r.extra["video"])
        splits[who].add(r.split)
        assert r.path.is_file() and r.duration and r.duration > 0.5
        chips = load_chips(clip_frames(r, corpus))
        assert chips.shape == (2, 32, 32, 3)
    assert set(videos) == {face_sources()[i][0] for i in range(4)}
    assert all(len(v) == 3 for v in videos.values())
    assert all(len(s) == 1 for s in splits.values())  # split by identity
    assert sorted(next(iter(s)) for s in splits.values()) == ["dev", "test", "train", "train"]


def test_the_manifest_names_no_identity(corpus: Path) -> None:
    text = corpus.read_text()
    assert all(json.loads(line)["identity"] is None for line in text.splitlines())
    for name in set(read_oracle(corpus).values()):
        assert name not in text
    voices = json.loads(oracle_path(corpus).read_text())["voices"]
    assert len(set(voices.values())) == 4  # one pseudo-speaker voice per identity


def test_videos_of_one_identity_are_different_sessions(corpus: Path) -> None:
    records, oracle = read_manifest(corpus), read_oracle(corpus)
    first: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in records:
        if r.extra["clip"].endswith("c00"):
            first[oracle[r.extra["clip"]]].append(load_chips(clip_frames(r, corpus))[0].astype(float))
    for chips in first.values():
        assert np.abs(chips[0] - chips[1]).mean() > 2.0  # another pose / light, not a copy


def test_rebuild_is_a_no_op_and_an_interrupted_build_resumes_identically(corpus: Path, tmp_path: Path) -> None:
    stamp = corpus.parent / "build.json"
    before = stamp.stat().st_mtime_ns
    assert build_av_corpus(corpus.parent, **ARGS) == corpus
    assert stamp.stat().st_mtime_ns == before
    copy = tmp_path / "copy"
    shutil.copytree(corpus.parent, copy)
    victim = read_manifest(corpus)[5].extra["video"]
    shutil.rmtree(copy / "videos" / victim)  # as if the build died before this video
    stamped = json.loads((copy / "build.json").read_text())
    (copy / "build.json").write_text(json.dumps({**stamped, "complete": False}))
    (copy / "manifest.jsonl").unlink()
    rebuilt = build_av_corpus(copy, **ARGS)
    assert rebuilt.read_text() == corpus.read_text()  # relative paths: same bytes
    a = (copy / "videos" / victim / "c00.wav").read_bytes()
    assert a == (corpus.parent / "videos" / victim / "c00.wav").read_bytes()


def _pixel_embedder(chips: np.ndarray) -> np.ndarray:
    """A crude face embedder: the centred, 8×8-downsampled grey chip."""
    grey = torch.from_numpy(chips.astype(np.float32).mean(axis=3))[:, None]
    small = torch.nn.functional.adaptive_avg_pool2d(grey, 8).flatten(1).numpy()
    return small - small.mean(axis=1, keepdims=True)


class _Student(torch.nn.Module):
    """A small voice student: log-mel, a 1-d conv, mean + std pooling, a linear embedding."""

    def __init__(self) -> None:
        super().__init__()
        from training.frontends.logmel import LogMelFrontend

        self.frontend = LogMelFrontend(n_mels=24)
        self.conv = torch.nn.Conv1d(24, 32, 5, padding=2)
        self.out = torch.nn.Linear(64, 16)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, _ = self.frontend(waves, lengths)
        h = torch.relu(self.conv(feats))
        return self.out(torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1))


def test_teacher_sampled_gcl_loss_falls_on_the_corpus(corpus: Path) -> None:
    records = read_manifest(corpus)
    teacher = teacher_embeddings([clip_frames(r, corpus) for r in records], _pixel_embedder)
    assert teacher.shape[0] == len(records)
    np.testing.assert_allclose(np.linalg.norm(teacher, axis=1), 1.0, atol=1e-5)
    store = AudioStore(records, 16000)
    batches = TeacherBatches(records, store, teacher, classes_per_batch=4, k=3, tau_pos=None, tau_neg=0.9,
                             crop_seconds=0.5, augment=Augmenter.none(), seed=0, steps=30)  # fmt: skip
    torch.manual_seed(0)
    encoder = _Student()
    loss = GeneralizedContrastiveLoss()
    opt = torch.optim.Adam([*encoder.parameters(), *loss.parameters()], lr=3e-3)
    values = []
    for step in range(len(batches)):
        b = batches[step]
        emb = encoder(torch.cat([b["anchor"], b["positive"]]), torch.cat([b["lengths"], b["lengths"]]))
        n = b["anchor"].shape[0]
        out = loss(emb[:n], emb[n:], keys_for_batch(b["speakers"], b["labelled"]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        values.append(float(out.loss.detach()))
    assert np.mean(values[-5:]) < np.mean(values[:5]) - 0.1


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="identities"):
        build_av_corpus(tmp_path / "x", identities=1)
    with pytest.raises(ValueError, match="no training identity"):
        build_av_corpus(tmp_path / "y", identities=4, split_fractions=(0.5, 0.5))
    assert not (tmp_path / "y").exists()  # rejected before anything is written
