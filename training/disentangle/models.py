"""The §7 models over RGB images [B, 3, S, S] in [0, 1] (Bernoulli means, as in §6).

- ``BetaVAE``: the baseline, one latent of ``groups × block`` dims, all active, β-weighted KL.
- ``GroupBlockVAE``: the same encoder and decoder with the latent split into ``groups`` blocks
  of ``block`` dims, plus a group-prediction head on the pixels trained without group labels by
  ``training.disentangle.cluster``'s loss over two augmentations. The head's predicted group
  (its argmax, detached: the VAE terms do not train the head) gates the latent: only that
  block's entries reach the decoder and carry KL.

Both expose ``loss(images)`` (a ``LossOutput``), ``codes(images)`` → (μ [N, latent], predicted
group [N] or None) and ``decode_latent(z)`` → images; ``GroupBlockVAE.decode_block(noise,
group)`` is its exported generator graph (noise in one block, the others zero).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from training.disentangle.cluster import augment, cluster_loss
from training.generative.gaussian import kl_to_unit_gaussian, reparameterise
from training.generative.models import VAEBase, mlp
from training.losses.result import LossOutput


class BetaVAE(nn.Module):
    """The β-VAE baseline (module docstring)."""

    def __init__(self, size: int = 32, groups: int = 3, block: int = 6, hidden: int = 256, beta: float = 4.0):
        super().__init__()
        if min(size, hidden) < 1 or groups < 2 or block < 2 or beta <= 0:
            raise ValueError("size, hidden >= 1; groups >= 2; block >= 2; beta > 0")
        self.size, self.groups, self.block, self.beta, self.hidden = size, groups, block, beta, hidden
        self.latent, self.pixels = groups * block, 3 * size * size
        self.encoder = mlp([self.pixels, hidden, hidden, 2 * self.latent])
        self.decoder = mlp([self.latent, hidden, hidden, self.pixels])

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, -1)
        return mu, logvar.clamp(-12.0, 8.0)

    def gate(self, x: Tensor) -> tuple[Tensor | None, dict[str, Tensor]]:
        """(latent mask [B, latent] or None: all active, extra loss terms)."""
        return None, {}

    def loss(self, images: Tensor) -> LossOutput:
        x = images.reshape(len(images), -1).float()
        mu, logvar = self.encode(x)
        mask, extra = self.gate(images.float())
        if mask is not None:  # a masked entry has μ = 0, log σ² = 0: N(0, 1), zero KL, and z = 0
            mu, logvar = mu * mask, logvar * mask
        z = reparameterise(mu, logvar)
        z = z if mask is None else z * mask
        rec = VAEBase.log_px(self.decoder(z), x)
        kl = kl_to_unit_gaussian(mu, logvar)
        loss = (-rec + self.beta * kl).mean()
        metrics = {"rec": float(-rec.mean().detach()), "kl": float(kl.mean().detach())}
        for name, term in extra.items():
            loss = loss + term
            metrics[name] = float(term.detach())
        return LossOutput(loss, metrics)

    def forward(self, images: Tensor) -> LossOutput:
        return self.loss(images)

    @torch.no_grad()
    def codes(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """(μ [N, latent], predicted group [N] or None)."""
        return self.encode(images.reshape(len(images), -1).float())[0], None

    def decode_latent(self, z: Tensor) -> Tensor:
        """Pixel probabilities [B, 3, S, S] of latents [B, latent]."""
        return torch.sigmoid(self.decoder(z)).reshape(-1, 3, self.size, self.size)


class GroupBlockVAE(BetaVAE):
    """Per-group latent blocks gated by an unsupervised group-prediction head (module docstring)."""

    eye: Tensor

    def __init__(
        self,
        *args: Any,
        head_hidden: int = 128,
        temperature: float = 1.0,
        entropy_weight: float = 1.0,
        cluster_weight: float = 1.0,
        shift: int = 2,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if head_hidden < 1 or temperature <= 0 or entropy_weight < 0 or cluster_weight <= 0 or shift < 0:
            raise ValueError("head_hidden >= 1, temperature > 0, entropy_weight >= 0, cluster_weight > 0, shift >= 0")
        self.temperature, self.entropy_weight, self.cluster_weight, self.shift = (
            temperature,
            entropy_weight,
            cluster_weight,
            shift,
        )
        self.head_hidden = head_hidden
        self.head = mlp([self.pixels, head_hidden, head_hidden, self.groups])
        # block_mask[g] is 1 on group g's block: indexing it is a Gather, so the graph exports.
        self.register_buffer("eye", torch.eye(self.groups).repeat_interleave(self.block, 1), persistent=False)

    def assign(self, images: Tensor) -> Tensor:
        """Soft group assignments [B, G]."""
        return self.head(images.reshape(len(images), -1)).softmax(-1)

    def gate(self, images: Tensor) -> tuple[Tensor | None, dict[str, Tensor]]:
        with torch.no_grad():
            predicted = self.assign(images).argmax(-1)
        pa, pb = self.assign(augment(images, self.shift)), self.assign(augment(images, self.shift))
        term = cluster_loss(pa, pb, self.temperature, self.entropy_weight)
        return self.eye[predicted], {"cluster": self.cluster_weight * term}

    @torch.no_grad()
    def codes(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        mu, _ = self.encode(images.reshape(len(images), -1).float())
        return mu, self.assign(images.float()).argmax(-1)

    def decode_block(self, noise: Tensor, group: Tensor) -> Tensor:
        """Images [B, 3, S, S] of block latents [B, block] placed in group ``group`` [B]'s block."""
        z = noise.repeat(1, self.groups) * self.eye[group]
        return self.decode_latent(z)


MODELS: dict[str, type[BetaVAE]] = {"group_blocks": GroupBlockVAE, "beta_vae": BetaVAE}


def build_model(spec: dict[str, Any], size: int, groups: int) -> BetaVAE:
    """The model of a recipe's ``method`` section: ``{name: group_blocks | beta_vae, ...arguments}``."""
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
    if name not in MODELS:
        raise ValueError(f"method.name must be one of {', '.join(MODELS)}, got {name!r}")
    return MODELS[name](size, groups, **kwargs)
