"""Optimizing speaker embeddings using meta-training sets: episodic ridge-regression loss (METHODS §2).

Each training step is an episode of K speakers with S support and Q query segments each. A linear
classifier is fitted to the L2-normalised support embeddings in closed form (ridge regression),
differentiably, and the encoder is trained on the cross-entropy of the query logits
``α·X_q W* + β``. Episode sizes (K = 100, S = 2, Q = 1) and λ = 1 are recipe defaults: they
belong to the sampler and the recipe, not to this module.

Dual form: ``W* = X_sᵀ (X_s X_sᵀ + λI)⁻¹ Y_s`` equals the primal ``(X_sᵀ X_s + λI)⁻¹ X_sᵀ Y_s``
(push-through identity), but solves a (K·S)×(K·S) system instead of a D×D one — smaller
whenever K·S < D, and with small episodes much smaller — and makes the limit λ → ∞ visible:
``λ·W* → X_sᵀ Y_s``, whose column k is S × the mean of class k's support embeddings, so the
logits tend to dot-products with class prototypes (a prototypical loss) up to the scale α/λ.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.losses.result import LossOutput


def ridge_classifier(support: Tensor, labels: Tensor, n_classes: int, lam: float | Tensor) -> Tensor:
    """support [M, D], labels LongTensor [M] in 0..K−1, K = n_classes, λ > 0 → W* [D, K].

    ``W* = Xᵀ (X Xᵀ + λI)⁻¹ Y`` with Y the one-hot labels [M, K]; embeddings are used as given
    (the loss normalises them first). ``torch.linalg.solve`` is differentiable in X and λ.
    """
    if support.dim() != 2 or labels.shape != (support.shape[0],):
        raise ValueError(f"expected support [M, D] and labels [M], got {tuple(support.shape)}, {tuple(labels.shape)}")
    targets = F.one_hot(labels.long(), n_classes).to(support.dtype)
    eye = torch.eye(support.shape[0], dtype=support.dtype, device=support.device)
    gram = support @ support.T + lam * eye
    return support.T @ torch.linalg.solve(gram, targets)


class MetaTrainingSetLoss(nn.Module):
    """Episodic ridge-regression loss (METHODS §2).

    ``forward(support [K·S, D], support_labels [K·S] in 0..K−1, query [K·Q, D], query_labels
    [K·Q]) → LossOutput``: embeddings are L2-normalised, ``W* = ridge_classifier(X_s, y_s, K, λ)``,
    logits ``α·X_q W* + β`` [K·Q, K], loss = mean cross-entropy. ``α`` (clamped ≥ 1e-6, as the
    scale of §1) and ``β`` are learnable (init 10 and −5; β is common to every class and so
    cancels in the softmax — it is kept for fidelity to the formulation). ``λ`` is a fixed
    buffer, or learnable through log λ when ``learn_lam`` (keeps it positive). K is the number of
    classes, taken from ``n_classes`` or else ``max(support_labels) + 1``.

    Because ``W* ≈ X_sᵀ Y_s / λ`` for large λ, the logits shrink like α/λ: a large-λ recipe needs
    α of the order of λ/S to keep the prototypical loss it tends to from going flat.

    Metrics: ``accuracy`` of the query arg-max, ``alpha``, ``beta``, ``lam``.
    """

    def __init__(
        self,
        lam: float = 1.0,
        init_alpha: float = 10.0,
        init_beta: float = -5.0,
        learn_lam: bool = False,
    ) -> None:
        super().__init__()
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.alpha = nn.Parameter(torch.tensor(float(init_alpha)))
        self.beta = nn.Parameter(torch.tensor(float(init_beta)))
        log_lam = torch.tensor(math.log(lam))
        if learn_lam:
            self.log_lam = nn.Parameter(log_lam)
        else:
            self.register_buffer("log_lam", log_lam)

    def lam(self) -> Tensor:
        return self.log_lam.exp()

    def logits(self, support: Tensor, support_labels: Tensor, query: Tensor, n_classes: int) -> Tensor:
        """→ ``α·X_q W* + β`` [K·Q, K], on L2-normalised embeddings."""
        if query.dim() != 2 or query.shape[1] != support.shape[1]:
            raise ValueError(f"query must be [Nq, {support.shape[1]}], got {tuple(query.shape)}")
        # The solve needs at least float32 (linalg.solve has no bf16/fp16 kernels, and a Gram
        # matrix in bf16 loses the λ-sized structure), so AMP is switched off here.
        dtype = torch.promote_types(support.dtype, torch.float32)
        with torch.autocast(device_type=support.device.type, enabled=False):
            x_s, x_q = F.normalize(support.to(dtype), dim=1), F.normalize(query.to(dtype), dim=1)
            weights = ridge_classifier(x_s, support_labels, n_classes, self.lam().to(dtype))
            return torch.clamp(self.alpha, min=1e-6).to(dtype) * (x_q @ weights) + self.beta.to(dtype)

    def forward(
        self,
        support: Tensor,
        support_labels: Tensor,
        query: Tensor,
        query_labels: Tensor,
        n_classes: int | None = None,
    ) -> LossOutput:
        if query_labels.shape != (query.shape[0],):
            raise ValueError(f"query_labels must be [{query.shape[0]}], got {tuple(query_labels.shape)}")
        k = int(support_labels.max()) + 1 if n_classes is None else n_classes
        logits = self.logits(support, support_labels, query, k)
        loss = F.cross_entropy(logits, query_labels.long())
        with torch.no_grad():
            metrics = {
                "accuracy": float((logits.argmax(dim=1) == query_labels).float().mean()),
                "alpha": float(torch.clamp(self.alpha, min=1e-6)),
                "beta": float(self.beta),
                "lam": float(self.lam()),
            }
        return LossOutput(loss=loss, metrics=metrics)
