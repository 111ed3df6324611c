"""Teacher-assisted batch sampling (METHODS §8): the properties the method states, on in-memory clips.

The clips are a generated grid (identity × video × clip) with noise audio; teachers are built
from that grid directly (one-hot identities, identity plus video directions, Gaussian clusters),
so every expected value comes from the grid, not from the sampler.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.data.audio_store import AudioStore
from training.data.augment import Augmenter
from training.data.manifest import ManifestRecord
from training.data.teacher_batches import RegressionBatches, TeacherBatches
from training.methods.generalized_contrastive import target_matrix
from training.methods.teacher_sampling import (
    TeacherRegressionLoss,
    neighbour_table,
    oracle_embeddings,
    track_embedding,
)

IDENTITIES, VIDEOS, CLIPS = 6, 3, 2


def _grid() -> tuple[list[ManifestRecord], list[str], AudioStore]:
    """Clips of IDENTITIES × VIDEOS × CLIPS, no identity in the records; (records, identities, store)."""
    records, who = [], []
    for i in range(IDENTITIES):
        for v in range(VIDEOS):
            for c in range(CLIPS):
                video = f"v{i * VIDEOS + v:03d}"
                extra = {"video": video, "clip": f"{video}/c{c}"}
                records.append(ManifestRecord(Path(f"/mem/{video}-{c}.wav"), None, 1.0, "train", extra))
                who.append(f"id{i}")
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(1600).astype(np.float32) for _ in records]
    return records, who, AudioStore.from_arrays(records, arrays, sample_rate=1600)


def _batches(teacher: np.ndarray, steps: int = 20, **kwargs) -> TeacherBatches:
    records, _, store = _grid()
    settings = {"classes_per_batch": IDENTITIES, "per_class": 2, "k": VIDEOS * CLIPS, "crop_seconds": 0.5}
    return TeacherBatches(
        records, store, teacher, augment=Augmenter.none(1600), seed=3, steps=steps, **{**settings, **kwargs}
    )


def test_track_embedding_is_the_normalised_mean_of_normalised_frames() -> None:
    frames = np.array([[3.0, 4.0], [0.0, 2.0]])  # unit: (0.6, 0.8) and (0, 1); mean (0.3, 0.9)
    expected = np.array([0.3, 0.9]) / np.hypot(0.3, 0.9)
    np.testing.assert_allclose(track_embedding(frames), expected, atol=1e-12)
    with pytest.raises(ValueError):
        track_embedding(np.zeros((0, 4)))


def test_oracle_neighbours_are_the_same_person_in_other_videos() -> None:
    records, who, _ = _grid()
    videos = [str(r.extra["video"]) for r in records]
    table = neighbour_table(oracle_embeddings(who), videos, k=100, tau_pos=0.5)
    for i, row in enumerate(table):
        expected = {j for j in range(len(records)) if who[j] == who[i] and videos[j] != videos[i]}
        assert set(row.tolist()) == expected
        assert len(expected) == (VIDEOS - 1) * CLIPS


@pytest.mark.parametrize("per_class", [2, 3])
def test_oracle_teacher_yields_exactly_the_supervised_batches(per_class: int) -> None:
    records, who, _ = _grid()
    batches = _batches(oracle_embeddings(who), per_class=per_class)
    for step in range(len(batches)):
        b = batches[step]
        anchors, positives = b["anchor_utterance"].tolist(), b["positive_utterance"].tolist()
        ids = [who[a] for a in anchors]
        # One pseudo-class per person, every person of the corpus, N−1 pairs each.
        assert len(set(ids)) == IDENTITIES and len(ids) == IDENTITIES * (per_class - 1)
        assert all(who[a] == who[p] for a, p in zip(anchors, positives))
        # GCL's target matrix from the pseudo-class keys is the one the identity labels give.
        labels = torch.tensor([int(i[2:]) for i in ids])
        assert torch.equal(target_matrix(b["speakers"]), target_matrix(labels))
        assert bool(b["labelled"].all())
        assert b["anchor"].shape == b["positive"].shape == (len(ids), 800)


def _person_plus_video(weight: float) -> np.ndarray:
    """A teacher seeing the person and (by ``weight``) the video: one-hot identity ⊕ one-hot video."""
    records, who, _ = _grid()
    videos = [str(r.extra["video"]) for r in records]
    return np.concatenate([oracle_embeddings(who), weight * oracle_embeddings(videos)], axis=1)


def test_cross_video_constraint_never_pairs_two_clips_of_one_video() -> None:
    records, _, _ = _grid()
    video = [r.extra["video"] for r in records]
    teacher = _person_plus_video(2.0)  # the same video scores far above the same person elsewhere
    # Same-person cosine across videos is 1/5 here: no τ_pos, so the neighbours exist at all.
    constrained = _batches(teacher, k=2, tau_pos=None)
    free = _batches(teacher, k=2, tau_pos=None, cross_video=False)
    same_video_free = 0
    for step in range(len(constrained)):
        for batches, must_differ in ((constrained, True), (free, False)):
            b = batches[step]
            pairs = zip(b["anchor_utterance"].tolist(), b["positive_utterance"].tolist())
            same = sum(video[a] == video[p] for a, p in pairs)
            if must_differ:
                assert same == 0
            else:
                same_video_free += same
    assert same_video_free > 0  # the constraint is what keeps them apart


def _clustered_teacher(seed: int = 0) -> np.ndarray:
    """Gaussian clusters per person, wide enough that some cross-person cosines exceed 0.4."""
    _, who, _ = _grid()
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((IDENTITIES, 4))
    return np.stack([centres[int(w[2:])] + 0.6 * rng.standard_normal(4) for w in who])


def test_screening_keeps_every_two_anchors_below_tau_neg() -> None:
    teacher = _clustered_teacher()
    unit = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    sims = unit @ unit.T
    tau_neg = 0.4
    screened = _batches(teacher, tau_pos=None, tau_neg=tau_neg, classes_per_batch=4, steps=30)
    unscreened = _batches(teacher, tau_pos=None, tau_neg=tau_neg, classes_per_batch=4, steps=30, screen=False)
    above_unscreened = 0
    for step in range(len(screened)):
        a, _, _ = screened.pseudo_classes(step)
        assert a.size >= 2
        pair = sims[np.ix_(a, a)][~np.eye(a.size, dtype=bool)]
        assert bool((pair < tau_neg).all())
        u, _, _ = unscreened.pseudo_classes(step)
        above_unscreened += int((sims[np.ix_(u, u)][~np.eye(u.size, dtype=bool)] >= tau_neg).sum())
    assert above_unscreened > 0  # without screening, anchors of one person do meet


def test_batches_are_a_function_of_seed_and_step() -> None:
    teacher = _clustered_teacher()
    one, two = _batches(teacher, tau_pos=None), _batches(teacher, tau_pos=None)
    for step in (0, 7, 19):
        assert torch.equal(one[step]["anchor"], two[step]["anchor"])
        assert torch.equal(one[step]["positive_utterance"], two[step]["positive_utterance"])
    assert not torch.equal(one[0]["anchor_utterance"], one[1]["anchor_utterance"])


def test_bad_teacher_and_sizes_are_rejected() -> None:
    records, who, store = _grid()
    with pytest.raises(ValueError, match="one row per record"):
        TeacherBatches(records, store, np.zeros((3, 4)), augment=Augmenter.none(1600), seed=0, steps=1)
    with pytest.raises(ValueError, match="neighbours"):
        TeacherBatches(
            records, store, oracle_embeddings(who), per_class=5, k=3, augment=Augmenter.none(1600), seed=0, steps=1
        )


def test_regression_batches_carry_the_teacher_rows_and_the_loss_falls() -> None:
    records, who, store = _grid()
    teacher = _clustered_teacher()
    batches = RegressionBatches(
        records, store, teacher, clips_per_batch=8, crop_seconds=0.5, augment=Augmenter.none(1600), seed=0, steps=40
    )
    b = batches[0]
    np.testing.assert_array_equal(b["teacher"].numpy(), teacher[b["utterance"].numpy()].astype(np.float32))
    torch.manual_seed(0)
    loss = TeacherRegressionLoss(8, teacher.shape[1])
    student = torch.nn.Linear(16, 8)  # the "student" sees a fixed code of each clip
    codes = torch.randn(len(records), 16)
    opt = torch.optim.Adam([*student.parameters(), *loss.parameters()], lr=0.05)
    values = []
    for step in range(len(batches)):
        b = batches[step]
        out = loss(student(codes[b["utterance"]]), b["teacher"])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        values.append(float(out.loss.detach()))
    assert np.mean(values[-5:]) < 0.5 * np.mean(values[:5])
