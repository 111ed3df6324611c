"""Additive angular margin softmax (ArcFace; Deng et al., 2019): the supervised baseline (issue 6).

The classification head lives here, not in the encoder, so exported models return embeddings
only (DESIGN §4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.losses.result import LossOutput


class AAMSoftmax(nn.Module):
    """embeddings [N, D], labels LongTensor [N] in 0..n_classes−1 → LossOutput.

    ``cos θ_ij = cos(e_i, W_j)`` against learnable class centres W [n_classes, D]; the target
    logit becomes ``s·cos(θ + m)``, the others stay ``s·cos θ``; loss = cross-entropy.

    ``cos(θ + m) = cos θ·cos m − sin θ·sin m`` is not monotonic in θ once θ + m > π, so, as in
    the InsightFace / voxceleb_trainer implementations:

    - ``easy_margin=False`` (default): where ``cos θ ≤ cos(π − m)`` (i.e. θ + m ≥ π) the target
      logit is ``cos θ − m·sin(π − m)`` = ``cos θ − m·sin m`` instead, a linear continuation
      that keeps the target logit decreasing in θ;
    - ``easy_margin=True``: the margin is applied only where ``cos θ > 0`` (θ < π/2).

    ``sin θ = sqrt(max(1 − cos²θ, 1e-12))``: the floor keeps the gradient finite at cos θ = ±1.

    Metrics: ``accuracy`` = arg-max of the *margin-free* cosine equals the label (what inference
    would predict), and ``target_cos``, the mean cosine to the correct centre.
    """

    def __init__(
        self,
        embedding_dim: int,
        n_classes: int,
        margin: float = 0.2,
        scale: float = 30.0,
        easy_margin: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= margin < math.pi / 2:
            raise ValueError(f"margin must be in [0, π/2), got {margin}")
        self.weight = nn.Parameter(torch.empty(n_classes, embedding_dim))
        nn.init.xavier_normal_(self.weight, gain=1.0)
        self.margin, self.scale, self.easy_margin = float(margin), float(scale), easy_margin
        self.n_classes = n_classes

    def cosine(self, embeddings: Tensor) -> Tensor:
        """[N, D] → cos θ [N, n_classes]."""
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))

    def margin_logits(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """[N, D], [N] → ``s·cos(θ + m)`` at the target, ``s·cos θ`` elsewhere, [N, n_classes]."""
        if embeddings.dim() != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(f"expected [N, D] and [N], got {tuple(embeddings.shape)}, {tuple(labels.shape)}")
        cos = self.cosine(embeddings)
        m = self.margin
        sin = torch.sqrt((1.0 - cos * cos).clamp(min=1e-12))
        phi = cos * math.cos(m) - sin * math.sin(m)
        if self.easy_margin:
            phi = torch.where(cos > 0, phi, cos)
        else:
            phi = torch.where(cos > math.cos(math.pi - m), phi, cos - m * math.sin(math.pi - m))
        target = F.one_hot(labels.long(), self.n_classes).bool()
        return self.scale * torch.where(target, phi, cos)

    def forward(self, embeddings: Tensor, labels: Tensor) -> LossOutput:
        logits = self.margin_logits(embeddings, labels)
        loss = F.cross_entropy(logits, labels.long())
        with torch.no_grad():
            cos = self.cosine(embeddings)
            metrics = {
                "accuracy": float((cos.argmax(dim=1) == labels).float().mean()),
                "target_cos": float(cos.gather(1, labels.long()[:, None]).mean()),
            }
        return LossOutput(loss=loss, metrics=metrics)
