"""AAM softmax (ArcFace): reduction to softmax at m = 0, the margin, the θ + m > π fallback."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from training.losses import LOSSES, AAMSoftmax


def _head(margin: float, scale: float = 30.0, easy_margin: bool = False) -> AAMSoftmax:
    """Two classes with centres e1 and e2 in 2-d."""
    head = AAMSoftmax(2, 2, margin=margin, scale=scale, easy_margin=easy_margin)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    return head


def _at_angle(theta: float) -> torch.Tensor:
    return torch.tensor([[math.cos(theta), math.sin(theta)]])


def test_zero_margin_is_softmax_cross_entropy_on_scaled_cosine() -> None:
    gen = torch.Generator().manual_seed(0)
    head = AAMSoftmax(8, 5, margin=0.0, scale=17.0)
    x, labels = torch.randn(10, 8, generator=gen), torch.randint(0, 5, (10,), generator=gen)
    cos = F.normalize(x, dim=1) @ F.normalize(head.weight, dim=1).T
    expected = F.cross_entropy(17.0 * cos, labels)
    assert head(x, labels).loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_margin_matches_hand_value_and_lowers_only_the_target_logit() -> None:
    theta = math.pi / 3  # cos to e1 = .5, to e2 = cos(π/6)
    logits = _head(0.2).margin_logits(_at_angle(theta), torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(30 * math.cos(theta + 0.2), abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(30 * math.cos(math.pi / 6), abs=1e-4)
    plain = _head(0.0).margin_logits(_at_angle(theta), torch.tensor([0]))
    assert logits[0, 0] < plain[0, 0] and logits[0, 1] == plain[0, 1]
    loss_m = _head(0.2)(_at_angle(theta), torch.tensor([0])).loss
    assert loss_m > _head(0.0)(_at_angle(theta), torch.tensor([0])).loss


def test_fallback_past_pi_keeps_the_target_logit_decreasing() -> None:
    m = 0.5
    theta = math.pi - 0.2  # θ + m > π: cos(θ + m) would rise again
    logit = _head(m, scale=1.0).margin_logits(_at_angle(theta), torch.tensor([0]))[0, 0].item()
    assert logit == pytest.approx(math.cos(theta) - m * math.sin(m), abs=1e-6)
    grid = torch.linspace(0.0, math.pi, 200)
    x = torch.stack([grid.cos(), grid.sin()], dim=1)
    target = _head(m, scale=1.0).margin_logits(x, torch.zeros(200, dtype=torch.long))[:, 0]
    assert (target.diff() < 0).all()


def test_easy_margin_applies_only_below_ninety_degrees() -> None:
    head = _head(0.3, scale=1.0, easy_margin=True)
    obtuse = head.margin_logits(_at_angle(2.0), torch.tensor([0]))[0, 0].item()
    acute = head.margin_logits(_at_angle(1.0), torch.tensor([0]))[0, 0].item()
    assert obtuse == pytest.approx(math.cos(2.0), abs=1e-6)
    assert acute == pytest.approx(math.cos(1.3), abs=1e-6)


def test_accuracy_metric_uses_the_margin_free_cosine() -> None:
    x = torch.stack([_at_angle(0.1)[0], _at_angle(1.5)[0], _at_angle(0.7)[0]])  # nearest: e1, e2, e1
    out = _head(0.2)(x, torch.tensor([0, 1, 1]))
    assert out.metrics["accuracy"] == pytest.approx(2 / 3)
    # θ = 0.7 < π/4 + 0.2: with the margin its target logit loses, without it the cosine wins.
    assert _head(0.2)(_at_angle(0.7), torch.tensor([0])).metrics["accuracy"] == 1.0


def test_gradient_is_finite_on_a_class_centre() -> None:
    x = torch.tensor([[1.0, 0.0]], requires_grad=True)
    _head(0.2)(x, torch.tensor([0])).loss.backward()
    assert torch.isfinite(x.grad).all()


def test_registry_lists_the_losses_that_are_not_seed_methods() -> None:
    from training.methods import METHODS

    assert LOSSES == {"aam_softmax": AAMSoftmax}
    assert not {m.build for m in METHODS.values()} & set(LOSSES.values())  # those are METHODS'


def test_a_few_steps_on_gaussian_clusters_lower_the_loss_and_raise_accuracy() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    centres = 2.0 * torch.randn(8, 16, generator=gen)
    labels = torch.randint(0, 8, (64,), generator=gen)
    x = centres[labels] + 1.5 * torch.randn(64, 16, generator=gen)
    encoder, head = torch.nn.Linear(16, 8), AAMSoftmax(8, 8, margin=0.2, scale=30.0)
    optimiser = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    with torch.no_grad():
        before = head(encoder(x), labels)
    for _ in range(30):
        out = head(encoder(x), labels)
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = head(encoder(x), labels)
    assert after.loss.item() < 0.5 * before.loss.item()
    assert after.metrics["accuracy"] > before.metrics["accuracy"]
