"""Meta-training-set loss (METHODS §2): hand value, dual = primal, the limiting cases, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from training.methods.meta_training_sets import MetaTrainingSetLoss, ridge_classifier


def _episode(k: int, s: int, q: int, d: int, seed: int, dtype: torch.dtype = torch.float64):
    """Normalised support [k·s, d] with labels, and query [k·q, d] near the same class centres."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=gen, dtype=dtype)
    support_labels = torch.arange(k).repeat_interleave(s)
    query_labels = torch.arange(k).repeat_interleave(q)
    support = centres[support_labels] + 0.7 * torch.randn(k * s, d, generator=gen, dtype=dtype)
    query = centres[query_labels] + 0.7 * torch.randn(k * q, d, generator=gen, dtype=dtype)
    return F.normalize(support, dim=1), support_labels, F.normalize(query, dim=1), query_labels


def test_matches_hand_computed_value() -> None:
    # Support e1 (class 0), e2 (class 1): X Xᵀ = I, so W* = I/(1 + λ) = I/2 for λ = 1.
    # Query (.6, .8) of class 1: logits 10·(.3, .4) − 5 = (−2, −1); CE = log(1 + e⁻¹).
    support, labels = torch.eye(2), torch.tensor([0, 1])
    query = torch.tensor([[3.0, 4.0]])  # not unit length: the loss normalises it
    out = MetaTrainingSetLoss()(support, labels, query, torch.tensor([1]))
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)
    assert out.metrics == pytest.approx({"accuracy": 1.0, "alpha": 10.0, "beta": -5.0, "lam": 1.0})
    assert torch.allclose(ridge_classifier(support, labels, 2, 1.0), torch.eye(2) / 2)


def test_dual_form_equals_primal_ridge_regression() -> None:
    support, labels, _, _ = _episode(k=4, s=3, q=1, d=6, seed=0)
    lam = 0.3
    y = F.one_hot(labels, 4).double()
    primal = torch.linalg.solve(support.T @ support + lam * torch.eye(6, dtype=torch.float64), support.T @ y)
    assert torch.allclose(ridge_classifier(support, labels, 4, lam), primal, atol=1e-12)


def test_large_lambda_tends_to_prototype_dot_products() -> None:
    k, s = 5, 3
    support, labels, query, _ = _episode(k=k, s=s, q=4, d=8, seed=1)
    means = torch.stack([support[labels == c].mean(dim=0) for c in range(k)], dim=1)  # [D, K]
    errors = []
    for lam in (1e2, 1e4, 1e6):
        scaled = lam * ridge_classifier(support, labels, k, lam)
        errors.append((scaled - s * means).abs().max().item())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4
    # Same arg-max as the prototypical classifier, through the loss module, in float32.
    loss = MetaTrainingSetLoss(lam=1e6)
    got = loss.logits(support.float(), labels, query.float(), k).argmax(dim=1)
    assert torch.equal(got, (query @ means).argmax(dim=1))


def test_large_lambda_loss_is_the_prototypical_loss_when_alpha_scales_with_lambda() -> None:
    k, s, lam, c = 5, 2, 1e6, 10.0
    support, labels, query, query_labels = _episode(k=k, s=s, q=2, d=8, seed=2)
    means = torch.stack([support[labels == j].mean(dim=0) for j in range(k)])  # [K, D]
    prototypical = F.cross_entropy(c * query @ means.T - 5.0, query_labels)
    loss = MetaTrainingSetLoss(lam=lam, init_alpha=c * lam / s).double()
    got = loss(support, labels, query, query_labels).loss
    assert got.item() == pytest.approx(prototypical.item(), abs=1e-4)


def test_small_lambda_fits_the_support_set() -> None:
    k, s = 4, 2  # K·S = 8 ≤ D = 16: the support embeddings are linearly independent
    support, labels, _, _ = _episode(k=k, s=s, q=1, d=16, seed=3)
    weights = ridge_classifier(support, labels, k, 1e-8)
    assert torch.allclose(support @ weights, F.one_hot(labels, k).double(), atol=1e-5)
    logits = MetaTrainingSetLoss(lam=1e-6).double().logits(support, labels, support, k)
    assert torch.equal(logits.argmax(dim=1), labels)


def test_gradcheck_through_the_closed_form_solve() -> None:
    gen = torch.Generator().manual_seed(4)
    loss = MetaTrainingSetLoss(lam=0.5, learn_lam=True).double()
    support = torch.randn(6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    query = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    log_lam = torch.tensor(math.log(0.5), dtype=torch.float64, requires_grad=True)
    labels, query_labels = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 2])

    def f(x_s: torch.Tensor, x_q: torch.Tensor, alpha: torch.Tensor, log_lam: torch.Tensor) -> torch.Tensor:
        params = {"alpha": alpha, "log_lam": log_lam}
        return functional_call(loss, params, (x_s, labels, x_q, query_labels)).loss

    assert torch.autograd.gradcheck(f, (support, query, alpha, log_lam))


def test_lambda_is_a_buffer_unless_learnable() -> None:
    fixed, learnt = MetaTrainingSetLoss(lam=2.0), MetaTrainingSetLoss(lam=2.0, learn_lam=True)
    assert "log_lam" in dict(fixed.named_buffers()) and "log_lam" not in dict(fixed.named_parameters())
    assert "log_lam" in dict(learnt.named_parameters())
    assert learnt.lam().item() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        MetaTrainingSetLoss(lam=0.0)


def test_accuracy_metric_counts_query_argmax() -> None:
    support, labels = torch.eye(3), torch.tensor([0, 1, 2])
    query = torch.tensor([[1.0, 0.1, 0.0], [0.0, 1.0, 0.2], [0.9, 0.0, 0.1]])
    out = MetaTrainingSetLoss()(support, labels, query, torch.tensor([0, 1, 2]))
    assert out.metrics["accuracy"] == pytest.approx(2 / 3)


def test_runs_in_float32_under_bf16_autocast_and_from_bf16_inputs() -> None:
    support, labels, query, query_labels = _episode(k=4, s=2, q=2, d=8, seed=5, dtype=torch.float32)
    loss = MetaTrainingSetLoss()
    reference = loss(support, labels, query, query_labels).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = loss(support, labels, query, query_labels).loss
    low = loss(support.bfloat16(), labels, query.bfloat16(), query_labels).loss
    assert autocast.dtype == torch.float32 and autocast.item() == pytest.approx(reference.item(), abs=1e-6)
    assert low.dtype == torch.float32 and low.item() == pytest.approx(reference.item(), abs=0.05)
