"""GCL (METHODS §1): hand values, the properties METHODS lists, the options, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from training.methods.generalized_contrastive import (
    AngularPrototypicalLoss,
    GeneralizedContrastiveLoss,
    keys_for_batch,
    normalized_target_matrix,
    target_matrix,
)

# A tiny batch with rational cosines. S = 10·cos(p_i, a_j) − 5:
#   p0 = (.8, .6): cos = (.8, .6, .96)  → S0 = (3, 1, 4.6)
#   p1 = (0, 1):   cos = (0, 1, .8)     → S1 = (−5, 5, 3)
#   p2 = (−1, 0):  cos = (−1, 0, −.6)   → S2 = (−15, −5, −11)
# keys (7, 7, 2): Ψ̃ rows (½, ½, 0), (½, ½, 0), (0, 0, 1).
ANCHOR = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
POSITIVE = torch.tensor([[0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
KEYS = torch.tensor([7, 7, 2])
S_HAND = torch.tensor([[3.0, 1.0, 4.6], [-5.0, 5.0, 3.0], [-15.0, -5.0, -11.0]])


def _lse(*values: float) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def test_cross_form_matches_hand_computed_value() -> None:
    rows = (_lse(3, 1, 4.6) - (3 + 1) / 2, _lse(-5, 5, 3) - (-5 + 5) / 2, _lse(-15, -5, -11) + 11)
    expected = sum(rows) / 3  # 4.645289662...
    out = GeneralizedContrastiveLoss()(ANCHOR, POSITIVE, KEYS)
    assert out.loss.item() == pytest.approx(expected, abs=1e-5)
    assert expected == pytest.approx(4.64528966, abs=1e-7)
    # Row arg-maxes: row 0 → column 2 (key 2 ≠ 7), row 1 → 1, row 2 → 1 (key 7 ≠ 2).
    assert out.metrics["accuracy"] == pytest.approx(1 / 3)
    assert out.metrics["w"] == pytest.approx(10.0) and out.metrics["b"] == pytest.approx(-5.0)


def test_loss_uses_cosines_so_embedding_norms_do_not_matter() -> None:
    loss = GeneralizedContrastiveLoss()
    scaled = loss(ANCHOR * torch.tensor([[3.0], [0.5], [7.0]]), POSITIVE * 2.0, KEYS).loss
    assert scaled.item() == pytest.approx(loss(ANCHOR, POSITIVE, KEYS).loss.item(), abs=1e-5)


def test_symmetric_cross_form_matches_hand_value_and_transpose_average() -> None:
    cols = (_lse(3, -5, -15) - (3 - 5) / 2, _lse(1, 5, -5) - (1 + 5) / 2, _lse(4.6, 3, -11) + 11)
    rows_loss = GeneralizedContrastiveLoss()(ANCHOR, POSITIVE, KEYS).loss.item()
    out = GeneralizedContrastiveLoss(symmetric=True)(ANCHOR, POSITIVE, KEYS)
    assert out.loss.item() == pytest.approx(0.5 * (rows_loss + sum(cols) / 3), abs=1e-5)
    # The column term is the row term with anchors and positives swapped.
    swapped = GeneralizedContrastiveLoss()(POSITIVE, ANCHOR, KEYS).loss.item()
    assert out.loss.item() == pytest.approx(0.5 * (rows_loss + swapped), abs=1e-5)


def test_sigmoid_form_matches_hand_value_and_depends_on_b() -> None:
    pos, neg = (3, 1, -5, 5, -11), (4.6, 3, -15, -5)  # entries of S_HAND where Ψ = 1 / Ψ = 0
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = 0.5 * (sum(softplus(-s) for s in pos) / 5 + sum(softplus(s) for s in neg) / 4)
    loss = GeneralizedContrastiveLoss(form="sigmoid")
    assert loss(ANCHOR, POSITIVE, KEYS).loss.item() == pytest.approx(expected, abs=1e-5)
    assert GeneralizedContrastiveLoss(form="sigmoid", symmetric=True)(ANCHOR, POSITIVE, KEYS).loss.item() == (
        pytest.approx(expected, abs=1e-5)
    )
    shifted = GeneralizedContrastiveLoss(form="sigmoid", init_b=0.0)(ANCHOR, POSITIVE, KEYS).loss.item()
    assert abs(shifted - expected) > 0.1


def test_b_cancels_in_the_softmax_forms() -> None:
    for form in ("cross", "all"):
        ref = GeneralizedContrastiveLoss(form=form)(ANCHOR, POSITIVE, KEYS).loss.item()
        other = GeneralizedContrastiveLoss(form=form, init_b=3.0)(ANCHOR, POSITIVE, KEYS).loss.item()
        assert other == pytest.approx(ref, abs=1e-5)


def _all_form_by_loops(anchor: torch.Tensor, positive: torch.Tensor, keys: list[int], w: float) -> float:
    """The "all" form written out term by term: 2N embeddings, j ≠ i, keys duplicated."""
    emb = [F.normalize(e, dim=0) for e in torch.cat([anchor, positive]).double()]
    k2 = keys + keys
    total = 0.0
    for i in range(len(emb)):
        others = [j for j in range(len(emb)) if j != i]
        logits = {j: w * float(emb[i] @ emb[j]) for j in others}
        log_z = _lse(*logits.values())
        pos = [j for j in others if k2[j] == k2[i]]
        total += -sum(logits[j] - log_z for j in pos) / len(pos)
    return total / len(emb)


def test_all_form_matches_explicit_loops() -> None:
    gen = torch.Generator().manual_seed(0)
    anchor, positive = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    keys = [3, 3, -1, 3, -2]
    expected = _all_form_by_loops(anchor, positive, keys, w=10.0)
    for symmetric in (False, True):
        loss = GeneralizedContrastiveLoss(form="all", symmetric=symmetric)
        assert loss(anchor, positive, torch.tensor(keys)).loss.item() == pytest.approx(expected, rel=1e-5)


def test_all_form_excludes_self_similarity() -> None:
    logits, psi = GeneralizedContrastiveLoss(form="all").logits_and_targets(ANCHOR, POSITIVE, KEYS)
    assert logits.shape == psi.shape == (6, 6)
    assert torch.isinf(logits.diagonal()).all() and (psi.diagonal() == 0).all()
    assert (psi.sum(dim=1) >= 1).all()  # every row keeps its other view


def test_gcl_equals_angular_prototypical_with_one_pair_per_speaker() -> None:
    gen = torch.Generator().manual_seed(1)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-6)):
        anchor = torch.randn(12, 16, generator=gen, dtype=dtype)
        positive = torch.randn(12, 16, generator=gen, dtype=dtype)
        keys = torch.randperm(100, generator=gen)[:12]  # distinct speakers in any order
        gcl = GeneralizedContrastiveLoss(init_w=7.5, init_b=-2.0).to(dtype)
        ap = AngularPrototypicalLoss(init_w=7.5, init_b=-2.0).to(dtype)
        gcl_loss = gcl(anchor, positive, keys).loss
        ap_loss = ap(torch.stack([positive, anchor], dim=1)).loss
        assert abs(gcl_loss.item() - ap_loss.item()) <= tol


def test_gcl_with_distinct_keys_is_cross_view_infonce() -> None:
    gen = torch.Generator().manual_seed(2)
    anchor, positive = torch.randn(9, 8, generator=gen), torch.randn(9, 8, generator=gen)
    w, b = 12.0, -4.0
    cos = (positive / positive.norm(dim=1, keepdim=True)) @ (anchor / anchor.norm(dim=1, keepdim=True)).T
    expected = F.cross_entropy(w * cos + b, torch.arange(9))
    keys = keys_for_batch(torch.zeros(9, dtype=torch.long), torch.zeros(9, dtype=torch.bool))
    got = GeneralizedContrastiveLoss(init_w=w, init_b=b)(anchor, positive, keys).loss
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


def test_ap_with_more_utterances_uses_the_mean_of_the_others_as_prototype() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 5, generator=gen, dtype=torch.float64)
    proto = x[:, 1:].mean(dim=1)
    cos = F.normalize(x[:, 0], dim=1) @ F.normalize(proto, dim=1).T
    expected = F.cross_entropy(10 * cos - 5, torch.arange(4))
    assert AngularPrototypicalLoss().double()(x).loss.item() == pytest.approx(expected.item(), abs=1e-10)


def test_keys_for_batch_gives_unlabelled_items_their_own_keys() -> None:
    speakers = torch.tensor([4, 4, 9, 4, 0])
    labelled = torch.tensor([True, True, True, False, False])
    assert keys_for_batch(speakers, labelled).tolist() == [4, 4, 9, -4, -5]
    with pytest.raises(ValueError):
        keys_for_batch(torch.tensor([-1, 2]), torch.tensor([True, False]))


def test_mixed_batch_target_is_block_diagonal_labelled_then_identity() -> None:
    # Unlabelled items 5..7 have speaker ids that also occur among the labelled (0 and 2): they
    # must still be negatives of everything but themselves.
    speakers = torch.tensor([0, 0, 1, 2, 2, 0, 2, 2])
    labelled = torch.tensor([True] * 5 + [False] * 3)
    psi = target_matrix(keys_for_batch(speakers, labelled))
    psi_labelled = (speakers[:5, None] == speakers[None, :5]).float()
    assert torch.equal(psi, torch.block_diag(psi_labelled, torch.eye(3)))
    assert psi[:5, 5:].sum() == 0 and psi[5:, :5].sum() == 0
    rows = normalized_target_matrix(keys_for_batch(speakers, labelled))
    assert torch.allclose(rows.sum(dim=1), torch.ones(8))
    assert rows[0].tolist() == [0.5, 0.5, 0, 0, 0, 0, 0, 0]


def test_regimes_differ_only_through_labelled() -> None:
    speakers = torch.tensor([3, 1, 3, 2, 1, 3])
    n = speakers.shape[0]
    supervised = target_matrix(keys_for_batch(speakers, torch.ones(n, dtype=torch.bool)))
    unsupervised = target_matrix(keys_for_batch(speakers, torch.zeros(n, dtype=torch.bool)))
    semi = target_matrix(keys_for_batch(speakers, torch.tensor([True, True, True, False, False, False])))
    assert torch.equal(supervised, (speakers[:, None] == speakers[None, :]).float())
    assert torch.equal(unsupervised, torch.eye(n))
    expected_semi = torch.eye(n)
    expected_semi[0, 2] = expected_semi[2, 0] = 1.0  # the labelled pair of speaker 3
    assert torch.equal(semi, expected_semi)
    assert len({supervised.sum().item(), unsupervised.sum().item(), semi.sum().item()}) == 3


@pytest.mark.parametrize("form", ["cross", "all", "sigmoid"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_gradcheck(form: str, symmetric: bool) -> None:
    gen = torch.Generator().manual_seed(4)
    loss = GeneralizedContrastiveLoss(form=form, symmetric=symmetric, init_w=3.0, init_b=-1.0).double()
    anchor = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    positive = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    keys = torch.tensor([5, 5, -3, -4])

    def f(a: torch.Tensor, p: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return functional_call(loss, {"similarity.w": w, "similarity.b": b}, (a, p, keys)).loss

    assert torch.autograd.gradcheck(f, (anchor, positive, w, b))


def test_rejects_bad_inputs() -> None:
    loss = GeneralizedContrastiveLoss()
    with pytest.raises(ValueError):
        loss(ANCHOR, POSITIVE[:2], KEYS)
    with pytest.raises(ValueError):
        loss(ANCHOR, POSITIVE, KEYS[:2])
    with pytest.raises(TypeError):
        loss(ANCHOR, POSITIVE, KEYS.float())
    with pytest.raises(ValueError):
        GeneralizedContrastiveLoss(form="pairwise")  # type: ignore[arg-type]
