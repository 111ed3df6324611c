"""The §6 VAEs over images in [0, 1] (pixels as Bernoulli means, so the reconstruction term is
binary cross-entropy on grey levels, as usual for MNIST-like data).

- ``LabelPriorVAE``: q(z|x) does not see y; prior p(z|y) = N(m_y, I) with learnable class means;
  L = E_q[−log p(x|z)] + β·KL(q(z|x) ‖ N(m_y, I)), plus optionally ``classify_weight`` × the
  cross-entropy of the classes' prior densities at μ(x) (logits −½‖μ(x) − m_y‖², the Bayes
  classifier of the prior with uniform p(y)). Generation: z = m_y + ε.
- ``ConditionalVAE``: one-hot y into encoder and decoder, prior N(0, I). Generation: z = ε.
- ``M2VAE`` (Kingma et al. 2014): the conditional VAE plus q(y|x); labelled rows use the bound
  of log p(x, y) and ``alpha`` × cross-entropy of q(y|x); unlabelled rows marginalise y under
  q(y|x) and add its entropy.

Every model exposes the same surface: ``loss(images, labels, labelled)`` (a ``LossOutput``),
``elbo`` / ``log_likelihood`` (bounds of log p(x|y) per row, for the test ELBO and the bound
test), and ``decode(noise, labels)`` → pixel probabilities, which is the exported generator
graph: noise ε ~ N(0, I) of ``latent`` dims and a class id in, an image out.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.generative.gaussian import kl_to_unit_gaussian, log_normal, log_unit_normal, reparameterise
from training.losses.result import LossOutput


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VAEBase(nn.Module):
    """Shared shape bookkeeping, the reconstruction term and the conditional bounds."""

    conditional_encoder = False
    conditional_decoder = False
    eye: Tensor

    def __init__(self, height: int, width: int, classes: int, latent: int = 8, hidden: int = 256, beta: float = 1.0):
        super().__init__()
        if min(height, width, latent, hidden) < 1 or classes < 2:
            raise ValueError("height, width, latent and hidden must be >= 1 and classes >= 2")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.height, self.width, self.classes, self.latent, self.beta = height, width, classes, latent, beta
        self.hidden = hidden
        pixels = height * width
        self.register_buffer("eye", torch.eye(classes), persistent=False)  # one-hot by Gather (exports)
        enc_in = pixels + (classes if self.conditional_encoder else 0)
        self.encoder = mlp([enc_in, hidden, hidden, 2 * latent])
        self.decoder = mlp([latent + (classes if self.conditional_decoder else 0), hidden, hidden, pixels])

    # --------------------------------------------------------------------------- pieces

    def onehot(self, labels: Tensor) -> Tensor:
        return self.eye[labels]

    def encode(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) of q(z|x[, y]) for flattened images [B, P]."""
        inp = torch.cat([x, self.onehot(labels)], -1) if self.conditional_encoder else x
        mu, logvar = self.encoder(inp).chunk(2, -1)
        return mu, logvar.clamp(-12.0, 8.0)  # keeps exp() finite early in training

    def prior_mean(self, labels: Tensor) -> Tensor | None:
        """The mean of p(z|y) (None: the origin)."""
        return None

    def decoder_logits(self, z: Tensor, labels: Tensor) -> Tensor:
        inp = torch.cat([z, self.onehot(labels)], -1) if self.conditional_decoder else z
        return self.decoder(inp)

    def decode(self, noise: Tensor, labels: Tensor) -> Tensor:
        """Generated pixel probabilities [B, H, W] for noise ε [B, latent] and class ids [B]."""
        mean = self.prior_mean(labels)
        z = noise if mean is None else mean + noise
        return torch.sigmoid(self.decoder_logits(z, labels)).reshape(-1, self.height, self.width)

    @staticmethod
    def log_px(logits: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) of Bernoulli means ``sigmoid(logits)`` at grey levels x, per row."""
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)

    def flat(self, images: Tensor) -> Tensor:
        return images.reshape(images.shape[0], -1).float()

    # --------------------------------------------------------------------------- bounds

    def terms(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log p(x|z) at one z ~ q, closed-form KL to the prior, μ) per row of flattened x."""
        mu, logvar = self.encode(x, labels)
        z = reparameterise(mu, logvar)
        return (
            self.log_px(self.decoder_logits(z, labels), x),
            kl_to_unit_gaussian(mu, logvar, self.prior_mean(labels)),
            mu,
        )

    def elbo(self, images: Tensor, labels: Tensor, samples: int = 1) -> Tensor:
        """The (β = 1) evidence lower bound of log p(x|y) per row, averaged over ``samples`` z."""
        x = self.flat(images)
        bounds = []
        for _ in range(samples):
            rec, kl, _ = self.terms(x, labels)
            bounds.append(rec - kl)
        return torch.stack(bounds).mean(0)

    def log_likelihood(self, images: Tensor, labels: Tensor, samples: int = 64) -> Tensor:
        """Importance-sampled estimate of log p(x|y) with q as proposal (Burda et al.'s bound,
        tighter than the ELBO as ``samples`` grows) per row."""
        x = self.flat(images)
        mu, logvar = self.encode(x, labels)
        mean = self.prior_mean(labels)
        weights = []
        for _ in range(samples):
            z = reparameterise(mu, logvar)
            weights.append(
                self.log_px(self.decoder_logits(z, labels), x) + log_unit_normal(z, mean) - log_normal(z, mu, logvar)
            )
        return torch.logsumexp(torch.stack(weights), 0) - math.log(samples)

    def loss(self, images: Tensor, labels: Tensor, labelled: Tensor | None = None) -> LossOutput:
        x = self.flat(images)
        rec, kl, mu = self.terms(x, labels)
        loss = (-rec + self.beta * kl).mean()
        metrics = {"rec": float(-rec.mean().detach()), "kl": float(kl.mean().detach())}
        extra = self.extra_loss(mu, labels)
        if extra is not None:
            loss = loss + extra
            metrics["class_ce"] = float(extra.detach())
        return LossOutput(loss, metrics)

    def extra_loss(self, mu: Tensor, labels: Tensor) -> Tensor | None:
        return None

    def forward(self, images: Tensor, labels: Tensor, labelled: Tensor | None = None) -> LossOutput:
        return self.loss(images, labels, labelled)


class LabelPriorVAE(VAEBase):
    """p(z|y) = N(m_y, I), q(z|x) blind to y (module docstring)."""

    def __init__(self, *args: Any, classify_weight: float = 0.0, mean_init: float = 2.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if classify_weight < 0 or mean_init < 0:
            raise ValueError("classify_weight and mean_init must be >= 0")
        self.classify_weight = classify_weight
        # Spread initial means so the classes start apart (zeros would start them all equal).
        self.means = nn.Parameter(torch.randn(self.classes, self.latent) * mean_init)

    def prior_mean(self, labels: Tensor) -> Tensor:
        return self.means[labels]

    def class_logits(self, mu: Tensor) -> Tensor:
        """log N(μ; m_y, I) up to a constant, for every class: [B, classes]."""
        return -0.5 * (mu[:, None, :] - self.means[None]).pow(2).sum(-1)

    def extra_loss(self, mu: Tensor, labels: Tensor) -> Tensor | None:
        if self.classify_weight == 0:
            return None
        return self.classify_weight * F.cross_entropy(self.class_logits(mu), labels)


class ConditionalVAE(VAEBase):
    """The baseline: y one-hot into encoder and decoder, prior N(0, I)."""

    conditional_encoder = True
    conditional_decoder = True


class M2VAE(ConditionalVAE):
    """Semi-supervised M2: the conditional VAE plus q(y|x) (module docstring)."""

    def __init__(self, *args: Any, alpha: float = 1.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = alpha
        self.classifier = mlp([self.height * self.width, self.hidden, self.classes])

    def loss(self, images: Tensor, labels: Tensor, labelled: Tensor | None = None) -> LossOutput:
        x = self.flat(images)
        known = torch.ones_like(labels, dtype=torch.bool) if labelled is None else labelled.bool()
        log_py = -math.log(self.classes)  # uniform p(y)
        logits = self.classifier(x)
        total = x.new_zeros(())
        metrics: dict[str, float] = {}
        if known.any():
            rec, kl, _ = self.terms(x[known], labels[known])
            ce = F.cross_entropy(logits[known], labels[known], reduction="sum")
            total = total + (-rec + self.beta * kl - log_py).sum() + self.alpha * ce
            metrics["class_ce"] = float(ce.detach() / known.sum())
        if (~known).any():
            xu, qy = x[~known], logits[~known].softmax(-1)
            # −U(x) = Σ_y q(y|x) (−ELBO(x, y) − log p(y)) − H(q(y|x)): every class, batched.
            ys = torch.arange(self.classes, device=x.device).repeat_interleave(len(xu))
            rec, kl, _ = self.terms(xu.repeat(self.classes, 1), ys)
            bound = (-rec + self.beta * kl - log_py).reshape(self.classes, len(xu)).T
            entropy = -(qy * qy.clamp_min(1e-12).log()).sum(-1)
            total = total + ((qy * bound).sum(-1) - entropy).sum()
        loss = total / len(x)
        metrics["labelled"] = float(known.float().mean())
        return LossOutput(loss, metrics)


MODELS: dict[str, type[VAEBase]] = {"label_prior": LabelPriorVAE, "cvae": ConditionalVAE, "m2": M2VAE}


def build_vae(spec: dict[str, Any], height: int, width: int, classes: int) -> VAEBase:
    """The model of a recipe's ``model`` section: ``{name: label_prior | cvae | m2, ...arguments}``."""
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
    if name not in MODELS:
        raise ValueError(f"model.name must be one of {', '.join(MODELS)}, got {name!r}")
    return MODELS[name](height, width, classes, **kwargs)
