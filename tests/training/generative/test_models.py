"""Properties of the §6 VAEs: the KL, the bounds, learning, and conditional generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.generative.classifier import predict, train_classifier
from training.generative.data import load_digits_images, split_stratified
from training.generative.evaluate import generate
from training.generative.gaussian import kl_to_unit_gaussian, log_normal, log_unit_normal
from training.generative.metrics import requested_class_accuracy
from training.generative.models import M2VAE, LabelPriorVAE, build_vae


def test_closed_form_kl_to_the_label_prior_matches_monte_carlo() -> None:
    g = torch.Generator().manual_seed(0)
    mu, logvar, mean = (
        torch.randn(3, 4, generator=g),
        torch.randn(3, 4, generator=g) * 0.5,
        torch.randn(3, 4, generator=g),
    )
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 3, 4, generator=g)
    mc = (log_normal(z, mu, logvar) - log_unit_normal(z, mean)).mean(0)
    closed = kl_to_unit_gaussian(mu, logvar, mean)
    torch.testing.assert_close(closed, mc, atol=0.03, rtol=0.01)
    assert (closed >= 0).all()
    assert kl_to_unit_gaussian(mean, torch.zeros_like(mean), mean).abs().max() < 1e-6  # q = p


def _digits():
    d = load_digits_images()
    held = split_stratified(d.labels, 0.2, 0)
    return d.take(~held), d.take(held)


def _train(model, train, steps: int, labelled_fraction: float = 1.0, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    known = torch.from_numpy(split_stratified(train.labels, labelled_fraction, seed))
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,))
        out = model.loss(x[idx], y[idx], known[idx])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    return losses


@pytest.mark.parametrize("name", ["label_prior", "cvae", "m2"])
def test_the_loss_decreases(name: str) -> None:
    train, _ = _digits()
    torch.manual_seed(0)
    model = build_vae({"name": name, "hidden": 64}, 8, 8, 10)
    losses = _train(model, train, 150, labelled_fraction=0.3 if name == "m2" else 1.0)
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:5])


def test_elbo_is_below_the_importance_sampled_log_likelihood() -> None:
    train, test = _digits()
    torch.manual_seed(0)
    model = LabelPriorVAE(8, 8, 10, hidden=64)
    _train(model, train, 100)
    x, y = torch.from_numpy(test.images[:100]), torch.from_numpy(test.labels[:100])
    with torch.no_grad():
        elbo = model.elbo(x, y, samples=50).mean()
        ll1 = model.log_likelihood(x, y, samples=1).mean()
        ll64 = model.log_likelihood(x, y, samples=64).mean()
    assert float(elbo) < float(ll64)
    assert float(ll1) < float(ll64)  # the bound tightens with more samples
    assert float(ll64) < 0  # grey-level Bernoulli log-likelihoods are negative


def test_m2_with_every_label_is_the_conditional_bound_plus_its_classifier_term() -> None:
    # Independently: −ELBO(x, y) + log C (uniform p(y)) + alpha·CE(q(y|x), y), averaged.
    torch.manual_seed(0)
    model = M2VAE(8, 8, 10, hidden=32, alpha=0.5)
    x, y = torch.rand(16, 8, 8), torch.randint(0, 10, (16,))
    torch.manual_seed(1)
    loss = model.loss(x, y, torch.ones(16, dtype=torch.bool)).loss
    torch.manual_seed(1)
    flat = x.reshape(16, -1)
    rec, kl, _ = model.terms(flat, y)
    ce = torch.nn.functional.cross_entropy(model.classifier(flat), y)
    expected = (-rec + kl).mean() + np.log(10) + 0.5 * ce
    torch.testing.assert_close(loss, expected)


def test_label_prior_generates_the_requested_class_far_above_chance() -> None:
    train, test = _digits()
    classifier = train_classifier(train, epochs=15)
    assert (predict(classifier, test.images)[0] == test.labels).mean() > 0.9
    torch.manual_seed(0)
    model = LabelPriorVAE(8, 8, 10, hidden=128)
    _train(model, train, 600)
    requested = np.repeat(np.arange(10), 30)
    accuracy = requested_class_accuracy(requested, predict(classifier, generate(model, requested, seed=0))[0])
    assert accuracy > 0.5  # chance is 0.1


def test_bad_model_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="model.name"):
        build_vae({"name": "gan"}, 8, 8, 10)
    with pytest.raises(ValueError, match="beta"):
        build_vae({"name": "cvae", "beta": 0.0}, 8, 8, 10)
