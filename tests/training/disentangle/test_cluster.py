"""The group-prediction head's loss (METHODS §7): worked values on a balanced and a collapsed
head, the entropy term pushing a skewed head towards uniform, and the whole model's loss falling
on the merged procedural groups (with the head recovering the hidden groups)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from training.disentangle.cluster import augment, cluster_loss, cluster_nt_xent, mean_assignment_entropy
from training.disentangle.evaluate import purity
from training.disentangle.groups import merged_groups
from training.disentangle.models import BetaVAE, GroupBlockVAE


def _onehot(groups: list[int], g: int = 3) -> torch.Tensor:
    return torch.eye(g)[torch.tensor(groups)]


def test_a_balanced_head_scores_the_worked_value_and_a_collapsed_one_worse() -> None:
    balanced = _onehot([0, 1, 2, 0, 1, 2])
    collapsed = _onehot([0] * 6)
    # Balanced: the columns are disjoint indicators, each its own view's twin: cos 1 to the
    # positive, 0 to the 2G − 2 = 4 negatives; entropy log 3 per view.
    positive = -math.log(math.e / (math.e + 4))
    assert float(cluster_nt_xent(balanced, balanced)) == pytest.approx(positive, abs=1e-5)
    assert float(mean_assignment_entropy(balanced)) == pytest.approx(math.log(3), abs=1e-6)
    assert float(cluster_loss(balanced, balanced)) == pytest.approx(positive - 2 * math.log(3), abs=1e-5)
    # Collapsed: columns 1 and 2 are empty (cos 0 to everything), so those four anchors score
    # −log(1/5); column 0 scores as above; entropy 0.
    expected = (2 * positive + 4 * math.log(5)) / 6
    assert float(cluster_loss(collapsed, collapsed)) == pytest.approx(expected, abs=1e-5)
    assert float(cluster_loss(collapsed, collapsed)) > float(cluster_loss(balanced, balanced)) + 1.0
    # A soft head leaning on one group also scores worse than a soft balanced one.
    leaning = torch.tensor([[4.0, 0, 0], [3.5, 0.5, 0], [3.5, 0, 0.5]]).repeat(2, 1).softmax(-1)
    spread = torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]]).repeat(2, 1).softmax(-1)
    assert float(cluster_loss(leaning, leaning)) > float(cluster_loss(spread, spread))


def test_a_gradient_step_on_a_skewed_head_raises_the_entropy_of_the_mean_assignment() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=gen) * 3
    features = centres.repeat_interleave(20, 0) + 0.3 * torch.randn(60, 8, generator=gen)  # balanced: 20 each
    gains = []
    for seed in range(10):  # ten initial heads, each skewed by its bias towards group 0
        torch.manual_seed(seed)
        head = torch.nn.Linear(8, 3)
        with torch.no_grad():
            head.bias.copy_(torch.tensor([6.0, 0.0, 0.0]))
            before = float(mean_assignment_entropy(head(features).softmax(-1)))
        assert before < 0.8 * math.log(3)
        views = [features + 0.05 * torch.randn(60, 8, generator=gen) for _ in range(2)]
        cluster_loss(head(views[0]).softmax(-1), head(views[1]).softmax(-1)).backward()
        assert head.bias.grad is not None and head.bias.grad[0] > 0  # descent lowers the favoured group's bias
        with torch.no_grad():
            for p in head.parameters():
                p -= 0.05 * p.grad  # a small step: one plain gradient step, no overshoot
            gains.append(float(mean_assignment_entropy(head(features).softmax(-1))) - before)
    assert min(gains) > 0 and np.mean(gains) > 0.05, gains


def test_without_the_entropy_term_nothing_resists_collapse() -> None:
    # The term's own gradient: on a collapsed batch only −H pulls towards uniform.
    logits = torch.tensor([[3.0, 0.0, 0.0]]).repeat(6, 1).requires_grad_()
    p = logits.softmax(-1)
    (-mean_assignment_entropy(p)).backward()
    assert logits.grad is not None and (logits.grad[:, 0] > 0).all() and (logits.grad[:, 1:] < 0).all()


def test_the_loss_falls_on_the_merged_groups_and_the_head_finds_them() -> None:
    torch.manual_seed(0)
    data = merged_groups(per_group=200, size=32, seed=0)
    images = torch.from_numpy(data.images)
    model = GroupBlockVAE(32, 3, block=3, hidden=64, head_hidden=64)
    optimiser = torch.optim.Adam(model.parameters(), 2e-3)
    losses = []
    for step in range(400):
        batch = images[torch.randint(0, len(images), (48,), generator=torch.Generator().manual_seed(step))]
        out = model.loss(batch)
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        losses.append(float(out.loss.detach()))
    assert np.mean(losses[-15:]) < 0.8 * np.mean(losses[:15])
    _, predicted = model.codes(images)
    assert predicted is not None
    assert normalized_mutual_info_score(data.groups, predicted.numpy()) > 0.8


def test_the_gate_keeps_the_other_blocks_out_of_the_decoder() -> None:
    model = GroupBlockVAE(16, 3, block=2, hidden=16, head_hidden=8).eval()
    noise = torch.randn(3, 2)
    z = torch.zeros(3, 6)
    for i in range(3):
        z[i, 2 * i : 2 * i + 2] = noise[i]
    torch.testing.assert_close(model.decode_block(noise, torch.arange(3)), model.decode_latent(z))
    assert BetaVAE(16, 3, block=2).codes(torch.rand(2, 3, 16, 16))[1] is None


def test_purity_of_a_hand_worked_assignment_and_augment_keeps_shape_and_range() -> None:
    truth, predicted = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 0, 1, 1, 1])
    assert purity(truth, predicted) == pytest.approx(4 / 6)
    assert purity(truth, truth) == 1.0
    images = torch.rand(4, 3, 16, 16)
    view = augment(images, generator=torch.Generator().manual_seed(0))
    assert view.shape == images.shape and 0 <= float(view.min()) and float(view.max()) <= 1
    assert not torch.equal(view, images)
