"""Baseline step sizes come from dev trials only: the picker never sees a test trial's waveform."""

from __future__ import annotations

import torch

from tests.training.redteam.tiny import TinyEncoder, impostor_trials
from training.redteam.steps import pick_steps, split_trials


class SpyEncoder(torch.nn.Module):
    """Records every waveform it is asked to embed."""

    def __init__(self, inner: TinyEncoder) -> None:
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        self.seen.append(waveform.detach().clone())
        return self.inner(waveform)


def test_split_is_a_seeded_partition():
    encoder = TinyEncoder(seed=0).eval()
    trials = impostor_trials(encoder, 10, seed=3)
    split = split_trials(trials, dev_fraction=0.3, seed=5)
    ids = lambda ts: {id(t) for t in ts}  # noqa: E731
    assert len(split.dev) == 3 and len(split.test) == 7
    assert ids(split.dev).isdisjoint(ids(split.test)) and ids(split.dev) | ids(split.test) == ids(trials)
    assert ids(split_trials(trials, 0.3, seed=5).dev) == ids(split.dev)


def test_pick_steps_never_sees_the_test_trials():
    encoder = TinyEncoder(seed=0).eval()
    split = split_trials(impostor_trials(encoder, 6, seed=0), dev_fraction=0.5, seed=1)
    spy, eps = SpyEncoder(encoder), 0.005
    steps = pick_steps(spy, split.dev, tau=0.5, kappa=0.05, eps=eps, budget=10, multipliers=(1.0, 2.5))
    assert spy.seen, "the picker must have run attacks"
    # Every input the picker embedded is a dev waveform plus a perturbation inside the ε box ...
    near = lambda x, t: float((x - t.waveform).abs().max()) <= eps + 1e-6  # noqa: E731 (float32 rounding of x + δ)
    assert all(any(near(x, t) for t in split.dev) for x in spy.seen)
    # ... and none is within the box of a test waveform.
    assert not any(near(x, t) for x in spy.seen for t in split.test)
    assert steps.pgd in (eps / 10, 2.5 * eps / 10) and steps.adam_lr in (eps / 10, 2.5 * eps / 10)
