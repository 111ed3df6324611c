"""The group-prediction head's loss (METHODS §7): cluster-level contrastive learning (Li et al.
2021, "Contrastive Clustering") with the entropy term against collapse.

For soft assignments ``pa``, ``pb`` [B, G] of two augmentations of one batch, each column (a
B-vector: how much every image belongs to group i) is a cluster's representation; NT-Xent over
the 2G columns takes column i of one view as the positive of column i of the other and every
other column as a negative (cosine similarity over ``temperature``). The entropy term is
H(mean assignment) of each view, subtracted: a head that sends everything to one group scores
worse than one that spreads the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cluster_nt_xent(pa: Tensor, pb: Tensor, temperature: float = 1.0) -> Tensor:
    """NT-Xent over the 2G assignment columns (mean over the 2G anchors)."""
    if pa.shape != pb.shape or pa.ndim != 2 or pa.shape[1] < 2:
        raise ValueError(f"expected two [B, G >= 2] assignments, got {tuple(pa.shape)} and {tuple(pb.shape)}")
    g = pa.shape[1]
    columns = F.normalize(torch.cat([pa.T, pb.T]), dim=1, eps=1e-8)  # [2G, B]
    sim = columns @ columns.T / temperature
    sim = sim.masked_fill(torch.eye(2 * g, dtype=torch.bool, device=sim.device), float("-inf"))
    positives = torch.cat([torch.arange(g, 2 * g), torch.arange(g)]).to(sim.device)
    return F.cross_entropy(sim, positives)


def mean_assignment_entropy(p: Tensor) -> Tensor:
    """H of the batch's mean assignment (nats): log G when balanced, 0 when collapsed."""
    q = p.mean(0)
    return -(q * q.clamp_min(1e-12).log()).sum()


def cluster_loss(pa: Tensor, pb: Tensor, temperature: float = 1.0, entropy_weight: float = 1.0) -> Tensor:
    """NT-Xent over columns − ``entropy_weight`` · (H(mean pa) + H(mean pb))."""
    entropy = mean_assignment_entropy(pa) + mean_assignment_entropy(pb)
    return cluster_nt_xent(pa, pb, temperature) - entropy_weight * entropy


def augment(images: Tensor, shift: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """A view of images [B, 3, S, S] that keeps each image's group: a random shift of up to
    ``shift`` pixels (wrapping), a random channel permutation (hues change, structure stays), a
    brightness scale in [0.7, 1] and a little Gaussian noise, clipped to [0, 1]."""
    b, device = images.shape[0], images.device
    # Drawn on the CPU (where ``generator`` lives), then moved: the same views on any device.
    rand = torch.rand(b, 4, generator=generator)
    out = torch.empty_like(images)
    for i in range(b):
        dy, dx = (rand[i, :2] * (2 * shift + 1)).long() - shift
        out[i] = torch.roll(images[i], (int(dy), int(dx)), dims=(1, 2))
    perm = torch.argsort(torch.rand(b, 3, generator=generator), 1).to(device)
    out = torch.gather(out, 1, perm[:, :, None, None].expand_as(out))
    out = out * (0.7 + 0.3 * rand[:, 2, None, None, None]).to(device)
    return (out + 0.03 * torch.randn(out.shape, generator=generator).to(device)).clamp(0, 1)
