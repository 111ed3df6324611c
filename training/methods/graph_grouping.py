"""Graph grouping loss (METHODS §5): ask the batch's similarity graph to split into the right groups.

A poor frame need not be close to every image of its identity: it is enough that the graph
connects it, possibly through other frames, to its own group rather than to another. Both forms
work on the batch's embeddings e [B, D] and group ids y [B] (identities when supervised, face
tracks when not), with the shared similarity ``s_ij = w·cos(e_i, e_j) + b`` (``ScaledCosine``;
``b`` cancels in both forms, as it does in any row softmax).

- ``"walk"`` (default; random-walk form): ``P = softmax_row(s)`` with no self-loops (``s_ii``
  excluded), ``L = −(1/B) Σ_i log Σ_j (P^T)_ij [y_i = y_j]`` — minus the log-probability that a
  T-step walk from i ends in i's group. T = 1 is the "soft nearest neighbour" loss, a softmax
  over same-group mass. Option ``include_self`` (True is the literal formula: j = i is in i's
  group, so a walk that comes back to i counts). **The default is False**, on purpose: for T ≥ 2 the literal form has a
  degenerate minimiser — two items of different groups that are each other's nearest neighbour
  walk i → k → i with probability ≈ 1, so the loss reaches 0 with every nearest neighbour in the
  wrong group (``tests/training/methods/test_graph_grouping.py`` shows it). ``include_self=False``
  asks the walk to reach *another* member of i's group instead, which removes that minimiser but
  no longer tends to 0 on perfectly separated groups (a group of n returns to i with
  probability about 1/(n−1) at T = 2). For T = 1 the two are the same (no self-loops). The
  literal form stays one flag away (``method.include_self: true``; ``bench/face_grouping.py``
  reports it beside the default).
  Computed in log space (``(log P)^T`` by log-sum-exp products, [B, B, B] per step), so that
  near-perfect separation at large ``w`` neither underflows nor gives infinite gradients.
- ``"ncut"`` (normalised-cut form): ``A_ij = exp(s_ij)`` for ``i ≠ j`` (no self-loops, as in the
  walk), ``L = (1/M) Σ_g cut(g, rest) / vol(g)`` over the M groups present, with
  ``cut(g, rest) = Σ_{i∈g, j∉g} A_ij`` and ``vol(g) = Σ_{i∈g} Σ_{j≠i} A_ij``; each ratio is in
  [0, 1] and is the probability that one walk step from a stationary-weighted node of g leaves g.
  Evaluated as ``exp(LSE(cut entries) − LSE(volume entries))``, which is invariant to the scale of
  A and so cannot overflow.

Every item needs another member of its group in the batch (else its walk target is empty for
T = 1 and a singleton group has no volume inside), which is checked.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from training.losses.result import LossOutput
from training.losses.similarity import ScaledCosine

Form = Literal["walk", "ncut"]
FORMS: tuple[str, ...] = ("walk", "ncut")


def _check(logits: Tensor, groups: Tensor) -> Tensor:
    """→ same-group mask [B, B] (diagonal True); raises on bad shapes or a singleton group."""
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"logits must be [B, B], got {tuple(logits.shape)}")
    if groups.shape != (logits.shape[0],) or groups.dtype.is_floating_point:
        raise ValueError(
            f"groups must be an integer tensor [B] = [{logits.shape[0]}], got {tuple(groups.shape)} {groups.dtype}"
        )
    same = groups[:, None] == groups[None, :]
    if bool((same.sum(dim=1) < 2).any()):
        raise ValueError("every item needs at least one other member of its group in the batch")
    return same


def log_walk_matrix(logits: Tensor, steps: int) -> Tensor:
    """logits s [B, B] → log P^T [B, B], P = softmax_row(s) with the diagonal excluded."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    log_p = torch.log_softmax(logits.masked_fill(eye, float("-inf")), dim=1)
    out = log_p
    for _ in range(steps - 1):
        # (log P^t ⊗ log P)_ij = log Σ_k P^t_ik P_kj
        out = torch.logsumexp(out[:, :, None] + log_p[None, :, :], dim=1)
    return out


def random_walk_loss(logits: Tensor, groups: Tensor, steps: int = 2, include_self: bool = False) -> Tensor:
    """``−(1/B) Σ_i log Σ_j (P^T)_ij [y_i = y_j]`` (and ``[j ≠ i]`` when not ``include_self``;
    see the module docstring)."""
    same = _check(logits, groups)
    if not include_self:
        same = same & ~torch.eye(len(groups), dtype=torch.bool, device=logits.device)
    log_pt = log_walk_matrix(logits, steps)
    return -torch.logsumexp(log_pt.masked_fill(~same, float("-inf")), dim=1).mean()


def ncut_ratios(logits: Tensor, groups: Tensor) -> Tensor:
    """cut(g, rest) / vol(g) [M] for the groups present, in ascending group-id order."""
    same = _check(logits, groups)
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    ids, member = torch.unique(groups, return_inverse=True)
    if ids.numel() < 2:  # nothing to cut: every cut entry is empty (log 0), its gradient NaN
        raise ValueError("the normalised-cut form needs at least two groups in the batch")
    in_group = member[None, :] == torch.arange(ids.numel(), device=groups.device)[:, None]  # [M, B]
    off_diag = logits.masked_fill(eye, float("-inf"))
    cut_rows = torch.logsumexp(off_diag.masked_fill(same, float("-inf")), dim=1)  # log Σ_{j∉g(i)} A_ij  [B]
    vol_rows = torch.logsumexp(off_diag, dim=1)  # log Σ_{j≠i} A_ij  [B]
    # Sum each group's rows: log Σ_{i∈g} of the per-row sums above, [M].
    log_cut = torch.logsumexp(cut_rows[None, :].masked_fill(~in_group, float("-inf")), dim=1)
    log_vol = torch.logsumexp(vol_rows[None, :].masked_fill(~in_group, float("-inf")), dim=1)
    return torch.exp(log_cut - log_vol)


def ncut_loss(logits: Tensor, groups: Tensor) -> Tensor:
    """``(1/M) Σ_g cut(g, rest) / vol(g)``."""
    return ncut_ratios(logits, groups).mean()


@torch.no_grad()
def nearest_is_same_group(logits: Tensor, groups: Tensor) -> float:
    """Fraction of items whose most similar other item is in their group."""
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    best = logits.masked_fill(eye, float("-inf")).argmax(dim=1)
    return float((groups[best] == groups).float().mean())


class GraphGroupingLoss(nn.Module):
    """embeddings [B, D] + groups LongTensor [B] → LossOutput (METHODS §5).

    form: ``"walk"`` (``steps`` = T, default 2; ``include_self``) or ``"ncut"``. Metrics: ``accuracy`` (nearest
    other item in the same group), ``w``, ``b``. The loss is computed in float32.
    """

    def __init__(
        self,
        form: Form = "walk",
        steps: int = 2,
        include_self: bool = False,
        init_w: float = 10.0,
        init_b: float = -5.0,
    ) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.form, self.steps, self.include_self = form, int(steps), bool(include_self)
        self.similarity = ScaledCosine(init_w, init_b)

    def forward(self, embeddings: Tensor, groups: Tensor) -> LossOutput:
        if embeddings.dim() != 2:
            raise ValueError(f"embeddings must be [B, D], got {tuple(embeddings.shape)}")
        x = embeddings.float()
        logits = self.similarity(x, x)
        if self.form == "walk":
            loss = random_walk_loss(logits, groups, self.steps, self.include_self)
        else:
            loss = ncut_loss(logits, groups)
        metrics = {"accuracy": nearest_is_same_group(logits, groups), **self.similarity.metrics()}
        return LossOutput(loss=loss, metrics=metrics)
