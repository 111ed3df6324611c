"""Graph grouping loss (METHODS §5): the properties of the random-walk and normalised-cut forms."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from training.losses.similarity import cosine_matrix
from training.methods.graph_grouping import (
    GraphGroupingLoss,
    log_walk_matrix,
    ncut_loss,
    ncut_ratios,
    random_walk_loss,
)


def _batch(groups: int = 4, per_group: int = 3, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(groups * per_group, dim, generator=g), torch.arange(groups).repeat_interleave(per_group)


def _separated(groups: int = 4, per_group: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings equal within a group and orthogonal across groups (cos 1 / 0)."""
    labels = torch.arange(groups).repeat_interleave(per_group)
    return torch.eye(groups)[labels], labels


@pytest.mark.parametrize("form,steps", [("walk", 1), ("walk", 2), ("walk", 3), ("ncut", 1)])
def test_perfectly_separated_groups_drive_the_loss_to_zero_as_w_grows(form, steps):
    emb, labels = _separated()  # the literal walk (returns to i count) and ncut reach 0
    losses = [
        float(GraphGroupingLoss(form, steps, include_self=True, init_w=w)(emb, labels).loss.detach())
        for w in (1.0, 4.0, 8.0, 30.0)
    ]
    assert all(a > b for a, b in itertools.pairwise(losses)), losses
    assert losses[0] > 0.1 and losses[-1] < 1e-6


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_the_default_walk_falls_to_the_floor_of_a_complete_group(steps):
    # Separated groups of n = 3: the walk stays in the group and is a walk on K_3 without
    # self-loops, which is back at its start after T steps with probability (1 + 2(-1/2)^T) / 3.
    emb, labels = _separated(per_group=3)
    floor = -math.log(1 - (1 + 2 * (-0.5) ** steps) / 3)
    losses = [float(GraphGroupingLoss("walk", steps, init_w=w)(emb, labels).loss.detach()) for w in (1.0, 8.0, 40.0)]
    assert all(a > b for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] == pytest.approx(floor, abs=1e-6)


def test_walk_with_t1_is_a_softmax_over_same_group_mass():
    emb, labels = _batch()
    s = 7.0 * cosine_matrix(emb, emb) - 2.0
    expected = []
    for i in range(len(labels)):
        others = [j for j in range(len(labels)) if j != i]
        same = [j for j in others if labels[j] == labels[i]]
        expected.append(torch.logsumexp(s[i, others], 0) - torch.logsumexp(s[i, same], 0))
    assert torch.allclose(random_walk_loss(s, labels, 1), torch.stack(expected).mean(), atol=1e-6)


@pytest.mark.parametrize("steps", [2, 3])
def test_log_space_walk_equals_the_matrix_power_of_p(steps):
    emb, labels = _batch(groups=3, per_group=4)
    s = (9.0 * cosine_matrix(emb, emb)).double()
    p = torch.softmax(s.masked_fill(torch.eye(len(labels), dtype=torch.bool), float("-inf")), dim=1)
    pt = torch.linalg.matrix_power(p, steps)
    assert torch.allclose(log_walk_matrix(s, steps).exp(), pt, atol=1e-12)
    same = labels[:, None] == labels[None, :]
    expected = -torch.log((pt * same).sum(1)).mean()  # the literal formula: a return to i counts
    assert torch.allclose(random_walk_loss(s, labels, steps, include_self=True), expected, atol=1e-12)
    others = same & ~torch.eye(len(labels), dtype=torch.bool)
    assert torch.allclose(
        random_walk_loss(s, labels, steps, include_self=False), -torch.log((pt * others).sum(1)).mean(), atol=1e-12
    )


def test_ncut_matches_its_definition_and_each_ratio_is_in_0_1():
    emb, labels = _batch(groups=3, per_group=4, seed=3)
    s = (6.0 * cosine_matrix(emb, emb) + 1.0).double()
    a = torch.exp(s) * (1 - torch.eye(len(labels), dtype=s.dtype))
    ratios = []
    for g in range(3):
        inside = labels == g
        ratios.append(a[inside][:, ~inside].sum() / a[inside].sum())
    got = ncut_ratios(s, labels)
    assert torch.allclose(got, torch.stack(ratios), atol=1e-12)
    assert bool(((got >= 0) & (got <= 1)).all()) and torch.allclose(ncut_loss(s, labels), got.mean())


def test_ncut_of_a_uniform_graph_is_the_share_of_other_group_neighbours():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    ratios = ncut_ratios(torch.zeros(9, 9), labels)  # every A_ij equal
    assert torch.allclose(ratios, torch.tensor([6 / 8, 7 / 8, 5 / 8]))


@pytest.mark.parametrize("form,steps", [("walk", 1), ("walk", 2), ("walk", 3), ("ncut", 1)])
def test_permuting_the_batch_changes_nothing(form, steps):
    emb, labels = _batch(seed=5)
    loss = GraphGroupingLoss(form, steps)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(loss(emb, labels).loss, loss(emb[order], labels[order]).loss, atol=1e-6)
    # Renaming the groups does not matter either.
    assert torch.allclose(loss(emb, labels).loss, loss(emb, 10 * (3 - labels)).loss, atol=1e-6)


@pytest.mark.parametrize("form,steps", [("walk", 1), ("walk", 3), ("ncut", 1)])
def test_gradients_are_finite_even_at_near_perfect_separation(form, steps):
    emb, labels = _separated()
    emb = (emb + 1e-3 * torch.randn(emb.shape, generator=torch.Generator().manual_seed(0))).requires_grad_()
    loss = GraphGroupingLoss(form, steps, init_w=300.0)
    out = loss(emb, labels)
    out.loss.backward()
    assert math.isfinite(float(out.loss.detach())) and bool(torch.isfinite(emb.grad).all())
    assert bool(torch.isfinite(loss.similarity.w.grad)) and out.metrics["accuracy"] == 1.0


def test_training_the_embeddings_separates_the_groups():
    emb, labels = _batch(groups=4, per_group=4, seed=2)
    emb.requires_grad_()
    loss = GraphGroupingLoss("walk", 1)  # T = 1: T >= 2 can settle in the cheat shown below
    opt = torch.optim.Adam([emb, *loss.parameters()], lr=0.05)
    first = float(loss(emb, labels).loss.detach())
    for _ in range(60):
        out = loss(emb, labels)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert float(out.loss.detach()) < 0.2 * first and out.metrics["accuracy"] == 1.0


def test_counting_returns_to_self_lets_cross_group_pairs_cheat_at_t2():
    # Items pair up across groups (0 with 1, 2 with 3, ...): each one's nearest neighbour is in
    # the *other* group, yet a 2-step walk i -> k -> i ends "in i's group" with probability ~1.
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    emb = torch.eye(4).repeat_interleave(2, dim=0)
    literal = GraphGroupingLoss("walk", 2, include_self=True, init_w=30.0)(emb, labels)
    others = GraphGroupingLoss("walk", 2, include_self=False, init_w=30.0)(emb, labels)
    assert literal.metrics["accuracy"] == 0.0 and float(literal.loss.detach()) < 1e-6
    assert float(others.loss.detach()) > 10.0


def test_bad_batches_are_refused():
    emb, labels = _batch()
    with pytest.raises(ValueError, match="at least one other member"):
        GraphGroupingLoss()(emb[:4], torch.tensor([0, 0, 0, 1]))
    with pytest.raises(ValueError, match="at least two groups"):
        GraphGroupingLoss("ncut")(emb[:3], torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match="groups must be an integer"):
        GraphGroupingLoss()(emb, labels.float())
    with pytest.raises(ValueError, match="form must be"):
        GraphGroupingLoss("cut")
