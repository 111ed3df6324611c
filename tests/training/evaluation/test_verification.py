"""Verification metrics against hand-computed values, brute force and properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.evaluation.verification import (
    det_curve,
    eer,
    far_frr_at,
    min_dcf,
    plot_det,
    reject_all_threshold,
    threshold_at_far,
    verification_report,
)

# 4 targets / 6 non-targets. Operating points (t: FAR, FRR), accept if score >= t:
#  .1: 6/6,0  .2: 5/6,0  .3: 4/6,0  .35: 3/6,0  .4: 3/6,1/4  .5: 2/6,1/4  .6: 1/6,1/4
#  .7: 1/6,2/4  .8: 0,2/4  .9: 0,3/4  reject-all: 0,1
TGT = [0.9, 0.8, 0.6, 0.35]
NON = [0.7, 0.5, 0.4, 0.3, 0.2, 0.1]
SCORES = np.array(TGT + NON)
LABELS = np.array([1] * 4 + [0] * 6)


def test_eer_hand_computed() -> None:
    # FRR-FAR goes from -1/12 at t=.5 to +1/12 at t=.6: halfway, FAR = 2/6 - 1/12 = 1/4.
    rate, threshold = eer(SCORES, LABELS)
    assert rate == pytest.approx(0.25)
    assert threshold == pytest.approx(0.55)


@pytest.mark.parametrize(
    ("p_target", "value", "threshold"),
    [
        (0.25, 0.5, 0.8),  # normalised DCF = FRR + 3 FAR: 0.5 at t=.8
        (0.5, 5 / 12, 0.6),  # FRR + FAR: 1/4 + 1/6 at t=.6
        (0.01, 0.5, 0.8),  # FRR + 99 FAR: only FAR=0 points matter, best FRR 1/2 at .8
    ],
)
def test_min_dcf_hand_computed(p_target: float, value: float, threshold: float) -> None:
    got_value, got_threshold = min_dcf(SCORES, LABELS, p_target)
    assert got_value == pytest.approx(value)
    assert got_threshold == pytest.approx(threshold)


def test_min_dcf_costs() -> None:
    # c_miss=2, p=0.5: DCF = FRR + 0.5 FAR, normaliser min(1, 0.5) → 2 FRR + FAR; best 0.5 at .35
    value, threshold = min_dcf(SCORES, LABELS, 0.5, c_miss=2.0)
    assert value == pytest.approx(0.5)
    assert threshold == pytest.approx(0.35)


@pytest.mark.parametrize(("far", "threshold"), [(1.0, 0.1), (0.5, 0.4), (0.34, 0.5), (0.2, 0.7), (1 / 6, 0.7)])
def test_threshold_at_far_hand_computed(far: float, threshold: float) -> None:
    assert threshold_at_far(SCORES, LABELS, far) == pytest.approx(threshold)


def test_threshold_at_far_needs_enough_nontargets() -> None:
    with pytest.raises(ValueError, match="needs at least 10 non-target"):
        threshold_at_far(SCORES, LABELS, 0.1)
    with pytest.raises(ValueError):
        threshold_at_far(SCORES, LABELS, 0.0)


def test_threshold_at_far_tied_top_rejects_all() -> None:
    # Two non-targets tied at the top but only one false accept allowed: nothing at 0.9 may
    # pass, so the threshold moves just above it.
    scores = np.array([1.0, 0.9, 0.9] + [0.1] * 8)
    labels = np.array([1] + [0] * 10)
    t = threshold_at_far(scores, labels, 0.1)
    assert t == reject_all_threshold([0.9]) and t > 0.9
    assert far_frr_at(scores, labels, t) == (0.0, 0.0)


def test_ties_count_as_accepted() -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.2])
    labels = np.array([1, 0, 0, 0])
    assert far_frr_at(scores, labels, 0.5) == pytest.approx((2 / 3, 0.0))
    assert far_frr_at(scores, labels, 0.6) == pytest.approx((0.0, 1.0))


def test_perfect_separation() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert eer(scores, labels) == (0.0, 0.7)
    assert min_dcf(scores, labels, 0.01) == (0.0, 0.7)
    assert far_frr_at(scores, labels, eer(scores, labels)[1]) == (0.0, 0.0)


def test_fully_overlapping_and_all_tied() -> None:
    rate, threshold = eer(np.full(10, 0.3), np.array([1, 0] * 5))
    assert rate == pytest.approx(0.5)
    assert threshold == pytest.approx(0.3)
    # Identical score distributions for both classes: EER 1/2, minDCF 1 (no better than trivial).
    rng = np.random.default_rng(0)
    s = rng.standard_normal(500)
    scores, labels = np.concatenate([s, s]), np.array([1] * 500 + [0] * 500)
    assert eer(scores, labels)[0] == pytest.approx(0.5, abs=1e-3)
    assert min_dcf(scores, labels, 0.05)[0] == pytest.approx(1.0)


def test_inverted_scores_give_eer_one() -> None:
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    labels = np.array([1, 1, 0, 0])
    assert eer(scores, labels)[0] == pytest.approx(1.0)


def _brute_force_eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """Independent O(n²) sweep: rates at every candidate threshold, then the crossing."""
    cands = sorted(set(scores.tolist())) + [math.inf]
    pts = []
    for t in cands:
        fa = sum(1 for s, y in zip(scores, labels) if not y and s >= t) / (labels == 0).sum()
        fr = sum(1 for s, y in zip(scores, labels) if y and s < t) / (labels == 1).sum()
        pts.append((fa, fr))
    for (fa0, fr0), (fa1, fr1) in zip(pts, pts[1:]):
        if fr0 - fa0 < 0 <= fr1 - fa1:
            w = (fa0 - fr0) / ((fr1 - fa1) - (fr0 - fa0))
            return fa0 + w * (fa1 - fa0)
    raise AssertionError("no crossing")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=2, max_size=40), st.lists(st.integers(0, 20), min_size=2, max_size=40))
def test_eer_matches_brute_force(targets: list[int], nontargets: list[int]) -> None:
    scores = np.array(targets + nontargets, dtype=float) / 4.0  # small ints: plenty of ties
    labels = np.array([1] * len(targets) + [0] * len(nontargets))
    rate, threshold = eer(scores, labels)
    assert rate == pytest.approx(_brute_force_eer(scores, labels), abs=1e-12)
    # The EER is bounded by the sweep: max_t min(FAR, FRR) <= EER <= min_t max(FAR, FRR).
    far, frr, _ = det_curve(scores, labels)
    assert np.max(np.minimum(far, frr)) - 1e-12 <= rate <= np.min(np.maximum(far, frr)) + 1e-12
    assert scores.min() <= threshold <= reject_all_threshold(scores)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-30, 30), min_size=1, max_size=20),
    st.lists(st.integers(-30, 30), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.2, 0.1, 0.05, 0.03, 0.01]),
)
def test_threshold_at_far_property(targets: list[int], nontargets: list[int], far: float) -> None:
    scores = np.array(targets + nontargets, dtype=float) / 8.0
    labels = np.array([1] * len(targets) + [0] * len(nontargets))
    non = scores[labels == 0]
    if non.size < math.ceil(1 / far - 1e-9):
        with pytest.raises(ValueError):
            threshold_at_far(scores, labels, far)
        return
    t = threshold_at_far(scores, labels, far)
    assert np.mean(non >= t) <= far + 1e-12
    lower = non[non < t]
    if lower.size:  # the next lower distinct non-target score would accept too many
        assert np.mean(non >= lower.max()) > far
    # It is a non-target score, or the value just above all of them.
    assert t in set(non.tolist()) or t == reject_all_threshold(non)


def test_det_curve_shapes_and_monotone() -> None:
    far, frr, thresholds = det_curve(SCORES, LABELS)
    assert far.shape == frr.shape == thresholds.shape == (11,)
    assert np.all(np.diff(thresholds) > 0)
    assert np.all(np.diff(far) <= 0) and np.all(np.diff(frr) >= 0)
    assert (far[0], frr[0], far[-1], frr[-1]) == (1.0, 0.0, 0.0, 1.0)


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="target"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="length"):
        eer([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="finite"):
        eer([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="labels"):
        eer([0.1, 0.2], [1, 2])


def test_report_omits_unresolvable_fars() -> None:
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(2, 1, 200), rng.normal(0, 1, 1500)])
    labels = np.array([1] * 200 + [0] * 1500)
    report = verification_report(scores, labels)
    assert (report.n_target, report.n_nontarget) == (200, 1500)
    assert set(report.thresholds_at_far) == {0.01, 0.001}  # 0.0001 needs 10000 non-targets
    assert set(report.min_dcf) == {0.01, 0.05}
    assert report.eer == eer(scores, labels)[0]
    for far, t in report.thresholds_at_far.items():
        measured_far, measured_frr = far_frr_at(scores, labels, t)
        assert measured_far <= far and measured_frr == report.frr_at_far[far]
    d = json.loads(json.dumps(report.to_dict()))
    assert set(d["thresholds_at_far"]) == {"0.01", "0.001"}
    assert d["min_dcf"]["0.05"]["value"] == report.min_dcf[0.05][0]


def test_plot_det_writes_png(tmp_path) -> None:
    rng = np.random.default_rng(2)
    labels = np.array([1] * 100 + [0] * 400)
    curves = {
        name: (np.concatenate([rng.normal(mu, 1, 100), rng.normal(0, 1, 400)]), labels)
        for name, mu in (("good", 3.0), ("poor", 1.0))
    }
    path = plot_det(tmp_path / "det" / "det.png", curves, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
