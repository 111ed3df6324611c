"""A few CPU steps on Gaussian clusters (16-d, embedded by a linear layer) make each loss fall.

DESIGN §8: methods are tested by a few steps on generated data showing that the loss falls and
the metric moves the right way. Evaluation uses a fixed held-out batch, not the training one.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from training.losses.result import LossOutput
from training.methods import AngularPrototypicalLoss, GeneralizedContrastiveLoss, MetaTrainingSetLoss, keys_for_batch

N_CLASSES, DIM_IN, DIM_OUT = 8, 16, 8


class Clusters:
    """Class centres in 16-d; ``draw(labels)`` returns a noisy sample of each label's class."""

    def __init__(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.centres = 2.0 * torch.randn(N_CLASSES, DIM_IN, generator=self.gen)

    def draw(self, labels: torch.Tensor) -> torch.Tensor:
        return self.centres[labels] + 1.5 * torch.randn(labels.shape[0], DIM_IN, generator=self.gen)

    def labels(self, n: int) -> torch.Tensor:
        return torch.randint(0, N_CLASSES, (n,), generator=self.gen)


def _train(
    loss_module: nn.Module, step: Callable[[nn.Module, Clusters], LossOutput], steps: int = 30
) -> tuple[LossOutput, LossOutput]:
    """→ (loss, metrics) on a fixed evaluation draw before and after ``steps`` Adam steps."""
    torch.manual_seed(0)
    encoder = nn.Linear(DIM_IN, DIM_OUT)
    data = Clusters(seed=1)

    # Evaluate with a fixed noise seed, so that before and after see the same draw.
    def fixed_eval() -> LossOutput:
        state = data.gen.get_state()
        data.gen.manual_seed(1234)
        with torch.no_grad():
            out = step(encoder, data)
        data.gen.set_state(state)
        return out

    optimiser = torch.optim.Adam([*encoder.parameters(), *loss_module.parameters()], lr=1e-2)
    before = fixed_eval()
    for _ in range(steps):
        out = step(encoder, data)
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
    return before, fixed_eval()


@pytest.mark.parametrize("regime", ["supervised", "semi", "unsupervised"])
@pytest.mark.parametrize("form,symmetric", [("cross", False), ("cross", True), ("all", False), ("sigmoid", False)])
def test_gcl_loss_falls(regime: str, form: str, symmetric: bool) -> None:
    loss = GeneralizedContrastiveLoss(form=form, symmetric=symmetric)

    def step(encoder: nn.Module, data: Clusters) -> LossOutput:
        speakers = data.labels(24)
        labelled = {
            "supervised": torch.ones(24, dtype=torch.bool),
            "semi": torch.arange(24) < 12,
            "unsupervised": torch.zeros(24, dtype=torch.bool),
        }[regime]
        # Unlabelled items: two crops of one utterance (small noise around one draw).
        base = data.draw(speakers)
        crops = base + 0.3 * torch.randn(base.shape, generator=data.gen)
        other = torch.where(labelled[:, None], data.draw(speakers), crops)
        return loss(encoder(base), encoder(other), keys_for_batch(speakers, labelled))

    before, after = _train(loss, step)
    assert after.loss.item() < 0.9 * before.loss.item()


def test_ap_loss_falls_and_accuracy_rises() -> None:
    loss = AngularPrototypicalLoss()

    def step(encoder: nn.Module, data: Clusters) -> LossOutput:
        speakers = torch.randperm(N_CLASSES, generator=data.gen)
        x = torch.stack([data.draw(speakers), data.draw(speakers), data.draw(speakers)], dim=1)
        return loss(encoder(x))

    before, after = _train(loss, step)
    assert after.loss.item() < 0.9 * before.loss.item()
    assert after.metrics["accuracy"] >= before.metrics["accuracy"]


def test_meta_training_set_loss_falls_and_accuracy_rises() -> None:
    loss = MetaTrainingSetLoss()
    k, s, q = 5, 2, 2

    def step(encoder: nn.Module, data: Clusters) -> LossOutput:
        classes = torch.randperm(N_CLASSES, generator=data.gen)[:k]
        support_labels, query_labels = torch.arange(k).repeat_interleave(s), torch.arange(k).repeat_interleave(q)
        support = encoder(data.draw(classes[support_labels]))
        query = encoder(data.draw(classes[query_labels]))
        return loss(support, support_labels, query, query_labels)

    before, after = _train(loss, step)
    assert after.loss.item() < 0.9 * before.loss.item()
    assert after.metrics["accuracy"] >= before.metrics["accuracy"]
