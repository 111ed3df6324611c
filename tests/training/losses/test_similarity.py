"""The scaled cosine shared by GCL and AP."""

from __future__ import annotations

import pytest
import torch

from training.losses import ScaledCosine, cosine_matrix


def test_scaled_cosine_values_and_defaults() -> None:
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    y = torch.tensor([[1.0, 1.0], [-4.0, 0.0]])
    s = ScaledCosine()(x, y)
    r = 2**-0.5
    assert torch.allclose(s, torch.tensor([[10 * r - 5, -15.0], [10 * r - 5, -5.0]]), atol=1e-6)
    assert ScaledCosine().metrics() == pytest.approx({"w": 10.0, "b": -5.0})


def test_scale_is_clamped_at_min_w() -> None:
    sim = ScaledCosine(init_w=-2.0, init_b=0.0)
    assert sim.scale().item() == pytest.approx(1e-6)
    assert sim.scale_cosine(torch.tensor([1.0])).item() == pytest.approx(1e-6)


def test_cosine_matrix_rejects_mismatched_dims() -> None:
    with pytest.raises(ValueError):
        cosine_matrix(torch.ones(2, 3), torch.ones(2, 4))
