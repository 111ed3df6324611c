"""Generalized Contrastive Loss (GCL) and the angular prototypical (AP) loss (METHODS §1).

One loss for supervised, semi-supervised and unsupervised speaker training: the definition never
changes, only the **target matrix** does, and the target matrix is built from one key per item
(``keys_for_batch``). A labelled item's key is its speaker; an unlabelled item's key is unique
to it, so it is only its own positive (instance discrimination).

Notation (METHODS §1): a batch of N items, each with an anchor embedding ``a_i`` and a positive
embedding ``p_i`` (two crops of one utterance, or two utterances of one labelled speaker);
``S_ij = w·cos(p_i, a_j) + b`` with learnable ``w`` (clamped ≥ 1e-6, init 10) and ``b`` (init −5);
``Ψ_ij = [key_i = key_j]``; ``Ψ̃`` = Ψ with each row divided by its sum.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.losses.result import LossOutput
from training.losses.similarity import ScaledCosine

Form = Literal["cross", "all", "sigmoid"]
FORMS: tuple[str, ...] = ("cross", "all", "sigmoid")


def keys_for_batch(speakers: Tensor, labelled: Tensor) -> Tensor:
    """speakers LongTensor [N] (≥ 0 where labelled), labelled BoolTensor [N] → keys LongTensor [N].

    A labelled item's key is its speaker id; unlabelled item ``i`` gets ``−(1 + i)``, which no
    speaker id and no other item shares. The speaker ids of unlabelled items are ignored, so the
    supervised (all True), semi-supervised (mixed) and unsupervised (all False) recipes differ
    only in ``labelled`` (METHODS §1).
    """
    if speakers.dim() != 1 or speakers.shape != labelled.shape:
        raise ValueError(f"speakers and labelled must be [N]: {tuple(speakers.shape)}, {tuple(labelled.shape)}")
    if labelled.dtype != torch.bool:
        raise TypeError(f"labelled must be a bool tensor, got {labelled.dtype}")
    speakers = speakers.long()
    if bool((speakers[labelled] < 0).any()):
        raise ValueError("labelled speaker ids must be >= 0 (negative keys mark unlabelled items)")
    own = -(1 + torch.arange(speakers.shape[0], device=speakers.device))
    return torch.where(labelled, speakers, own)


def target_matrix(keys: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """keys [N] → Ψ [N, N], ``Ψ_ij = 1`` iff ``keys_i == keys_j`` (so ``Ψ_ii = 1``)."""
    if keys.dim() != 1:
        raise ValueError(f"keys must be [N], got {tuple(keys.shape)}")
    return (keys[:, None] == keys[None, :]).to(dtype)


def normalized_target_matrix(keys: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """keys [N] → Ψ̃ [N, N]: Ψ with each row divided by its sum (every row sums to 1)."""
    psi = target_matrix(keys, dtype)
    return psi / psi.sum(dim=1, keepdim=True)


def soft_target_cross_entropy(logits: Tensor, psi: Tensor) -> Tensor:
    """logits [R, C], psi [R, C] ≥ 0 with a positive in every row → ``−(1/R) Σ_i Σ_j Ψ̃_ij log softmax_j``.

    ``logits`` may hold ``−inf`` (excluded entries); their ``psi`` must be 0. ``where`` keeps
    ``0·(−inf)`` from turning into NaN.
    """
    weights = psi / psi.sum(dim=1, keepdim=True)
    log_p = F.log_softmax(logits, dim=1)
    terms = torch.where(weights > 0, weights * log_p, torch.zeros_like(log_p))
    return -terms.sum(dim=1).mean()


def balanced_sigmoid_loss(logits: Tensor, psi: Tensor) -> Tensor:
    """logits [R, C], psi [R, C] in {0, 1} → ``½ (mean_{Ψ=1} softplus(−S) + mean_{Ψ=0} softplus(S))``.

    Binary cross-entropy of ``σ(S_ij)`` against ``Ψ_ij`` with positives and negatives each
    averaged separately, so the ~N² negatives do not swamp the ~N positives. A batch with no
    negative pair (every key equal) has only the positive term.
    """
    pos, neg = psi > 0, psi == 0
    pos_term = F.softplus(-logits[pos]).mean()
    if not bool(neg.any()):
        return pos_term
    return 0.5 * (pos_term + F.softplus(logits[neg]).mean())


@torch.no_grad()
def positive_is_argmax(logits: Tensor, psi: Tensor) -> float:
    """Fraction of rows whose highest logit is a positive (``Ψ = 1``) entry."""
    best = logits.argmax(dim=1, keepdim=True)
    return float(psi.gather(1, best).gt(0).float().mean())


class GeneralizedContrastiveLoss(nn.Module):
    """GCL (METHODS §1): anchor [N, D], positive [N, D], keys LongTensor [N] → LossOutput.

    Forms (``form``):

    - ``"cross"`` (default, the METHODS definition): ``S = w·cos(p_i, a_j) + b`` [N, N] and
      ``L = −(1/N) Σ_i Σ_j Ψ̃_ij log softmax_j(S_i·)``.
    - ``"all"``: the 2N embeddings ``E = [a; p]`` against each other. ``S_ij = w·cos(E_i, E_j) + b``
      for ``j ≠ i``; self-similarity is excluded from both the softmax and the targets; keys are
      duplicated, ``k = [keys; keys]``, ``Ψ_ij = [k_i = k_j]·[i ≠ j]`` (every row keeps at least
      its other view); ``L = −(1/2N) Σ_i Σ_{j≠i} Ψ̃_ij log softmax_{j≠i}(S_i·)``.
    - ``"sigmoid"`` (pairwise): on the cross matrix ``S`` [N, N],
      ``L = ½ (mean_{Ψ_ij=1} −log σ(S_ij) + mean_{Ψ_ij=0} −log(1 − σ(S_ij)))``: positives and
      negatives are weighted to equal total mass (see ``balanced_sigmoid_loss``). Here ``b`` is
      the decision threshold; in the softmax forms it cancels.

    ``symmetric=True`` adds the column-wise term and averages: ``½ (L(S, Ψ) + L(Sᵀ, Ψᵀ))``.
    For ``"cross"`` this also classifies each anchor among the positives. For ``"all"``
    (S symmetric) and ``"sigmoid"`` (mean over pairs) the two terms are equal, so the flag
    leaves the value unchanged; it is accepted so that a recipe can set it independently.

    Metrics: ``accuracy`` (fraction of rows whose arg-max is a positive), ``w``, ``b``.
    """

    def __init__(
        self,
        form: Form = "cross",
        symmetric: bool = False,
        init_w: float = 10.0,
        init_b: float = -5.0,
    ) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self.form = form
        self.symmetric = symmetric
        self.similarity = ScaledCosine(init_w, init_b)

    def logits_and_targets(self, anchor: Tensor, positive: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        """→ (S, Ψ) of the chosen form: [N, N] for cross/sigmoid, [2N, 2N] for all (−inf diagonal)."""
        _check_batch(anchor, positive, keys)
        if self.form == "all":
            both = torch.cat([anchor, positive], dim=0)
            keys2 = torch.cat([keys, keys], dim=0)
            logits = self.similarity(both, both)
            self_mask = torch.eye(both.shape[0], dtype=torch.bool, device=both.device)
            logits = logits.masked_fill(self_mask, float("-inf"))
            psi = target_matrix(keys2, logits.dtype).masked_fill(self_mask, 0.0)
            return logits, psi
        logits = self.similarity(positive, anchor)  # rows: positives p_i, columns: anchors a_j
        return logits, target_matrix(keys, logits.dtype)

    def forward(self, anchor: Tensor, positive: Tensor, keys: Tensor) -> LossOutput:
        logits, psi = self.logits_and_targets(anchor, positive, keys)
        term = balanced_sigmoid_loss if self.form == "sigmoid" else soft_target_cross_entropy
        loss = term(logits, psi)
        if self.symmetric:
            loss = 0.5 * (loss + term(logits.T, psi.T))
        metrics = {"accuracy": positive_is_argmax(logits, psi), **self.similarity.metrics()}
        return LossOutput(loss=loss, metrics=metrics)


class AngularPrototypicalLoss(nn.Module):
    """AP loss (Chung et al., 2020, "In defence of metric learning for speaker recognition").

    x [N, M, D]: N speakers, M ≥ 2 utterances each. Utterance 0 of each speaker is its query,
    the mean of utterances 1..M−1 its prototype; ``S_ij = w·cos(query_i, prototype_j) + b`` and
    the loss is the cross-entropy of each query against the correct prototype. With M = 2 the
    prototype is the single other utterance, which is GCL's ``"cross"`` form with distinct keys
    when ``x = stack([positive, anchor], dim=1)`` (METHODS §1). Written independently of GCL
    (broadcast cosine, hard labels), as the reference implementation is, so that the equality
    test checks two computations.
    """

    def __init__(self, init_w: float = 10.0, init_b: float = -5.0) -> None:
        super().__init__()
        self.similarity = ScaledCosine(init_w, init_b)

    def forward(self, x: Tensor) -> LossOutput:
        if x.dim() != 3 or x.shape[1] < 2:
            raise ValueError(f"expected [speakers, utterances >= 2, D], got {tuple(x.shape)}")
        query, prototype = x[:, 0, :], x[:, 1:, :].mean(dim=1)
        # [N, D, 1] against [1, D, N] → [N, N], cosine along the embedding axis.
        cos = F.cosine_similarity(query.unsqueeze(-1), prototype.unsqueeze(-1).transpose(0, 2), dim=1)
        logits = self.similarity.scale_cosine(cos)
        labels = torch.arange(x.shape[0], device=x.device)
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            accuracy = float((logits.argmax(dim=1) == labels).float().mean())
        return LossOutput(loss=loss, metrics={"accuracy": accuracy, **self.similarity.metrics()})


def _check_batch(anchor: Tensor, positive: Tensor, keys: Tensor) -> None:
    if anchor.dim() != 2 or anchor.shape != positive.shape:
        raise ValueError(f"anchor and positive must both be [N, D]: {tuple(anchor.shape)}, {tuple(positive.shape)}")
    if keys.shape != (anchor.shape[0],):
        raise ValueError(f"keys must be [N] = [{anchor.shape[0]}], got {tuple(keys.shape)}")
    if keys.dtype.is_floating_point:
        raise TypeError(f"keys must be integer, got {keys.dtype}")
