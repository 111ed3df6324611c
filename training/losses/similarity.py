"""The learnable scaled cosine ``s = w·cos + b`` shared by GCL and the AP loss (METHODS, notation).

``w`` is clamped at ``min_w`` (default 1e-6) in the forward pass, as in the angular prototypical
loss of Chung et al. (2020): a non-positive scale would invert or flatten every similarity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def cosine_matrix(x: Tensor, y: Tensor, eps: float = 1e-8) -> Tensor:
    """x [N, D], y [M, D] → cos [N, M], ``cos[i, j] = cos(x_i, y_j)``."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected [N, D] and [M, D], got {tuple(x.shape)} and {tuple(y.shape)}")
    return F.normalize(x, dim=1, eps=eps) @ F.normalize(y, dim=1, eps=eps).T


class ScaledCosine(nn.Module):
    """Learnable affine map of cosine similarities: ``s = max(w, min_w)·cos + b``.

    Note that ``b`` cancels in any softmax over a row of ``s``: it only matters for losses that
    score each pair on its own (the pairwise sigmoid form of GCL).
    """

    def __init__(self, init_w: float = 10.0, init_b: float = -5.0, min_w: float = 1e-6) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))
        self.min_w = float(min_w)

    def scale(self) -> Tensor:
        """The effective (clamped) scale, a 0-d tensor."""
        return torch.clamp(self.w, min=self.min_w)

    def scale_cosine(self, cos: Tensor) -> Tensor:
        """cos [...] → ``w·cos + b`` [...], for callers that computed the cosines themselves."""
        return self.scale() * cos + self.b

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """x [N, D], y [M, D] → s [N, M], ``s[i, j] = w·cos(x_i, y_j) + b``."""
        return self.scale_cosine(cosine_matrix(x, y))

    @torch.no_grad()
    def metrics(self) -> dict[str, float]:
        return {"w": float(self.scale()), "b": float(self.b)}
