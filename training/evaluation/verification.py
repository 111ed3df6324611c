"""Verification metrics: EER, minDCF, thresholds at a target FAR, DET curves (pure numpy).

Conventions used throughout: ``scores`` [n] float, higher = more likely the same identity;
``labels`` [n], 1 (or True) = target trial, 0 = non-target; a trial is **accepted when
score >= threshold**. FAR (false-accept rate) = accepted non-targets / non-targets; FRR
(false-reject rate, P_miss) = rejected targets / targets.

The operating points of a score list are the thresholds ``t`` equal to each distinct score,
plus ``reject_all_threshold`` (just above the largest score), which accepts nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_FARS = (0.01, 0.001, 0.0001)
DEFAULT_P_TARGETS = (0.01, 0.05)


def _check(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    y = y.astype(bool)
    if not y.any() or y.all():
        raise ValueError("need at least one target and one non-target trial")
    return s, y


def reject_all_threshold(scores: Any) -> float:
    """The smallest float above every score: the threshold that accepts no trial."""
    return float(np.nextafter(np.max(np.asarray(scores, dtype=np.float64)), np.inf))


def _operating_points(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """(thresholds ascending, FAR, FRR) at every distinct score and at reject-all."""
    thresholds = np.append(np.unique(s), reject_all_threshold(s))
    tgt, non = np.sort(s[y]), np.sort(s[~y])
    # count of scores >= t is n - (number of scores < t) = n - searchsorted(left)
    far = (non.size - np.searchsorted(non, thresholds, side="left")) / non.size
    frr = np.searchsorted(tgt, thresholds, side="left") / tgt.size
    return thresholds, far, frr


def det_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, frr, thresholds), each [m], thresholds ascending (FAR falls, FRR rises).

    Includes the accept-all point (lowest score: FRR 0) and reject-all (FAR 0, FRR 1).
    """
    thresholds, far, frr = _operating_points(*_check(scores, labels))
    return far, frr, thresholds


def eer(scores: Any, labels: Any) -> tuple[float, float]:
    """Equal error rate and its threshold.

    FRR − FAR rises with the threshold; between the last operating point where it is < 0 and
    the first where it is >= 0 both rates are interpolated linearly (the ROC's straight
    segment), and the EER is where they meet. The threshold is interpolated with the same
    weight. Perfect separation gives (0.0, lowest target score).
    """
    thresholds, far, frr = _operating_points(*_check(scores, labels))
    diff = frr - far
    i = int(np.argmax(diff >= 0))  # exists: reject-all has FRR 1, FAR 0; accept-all diff < 0
    d0, d1 = diff[i - 1], diff[i]
    w = float(-d0 / (d1 - d0))
    rate = far[i - 1] + w * (far[i] - far[i - 1])
    threshold = thresholds[i - 1] + w * (thresholds[i] - thresholds[i - 1])
    return float(rate), float(threshold)


def min_dcf(scores: Any, labels: Any, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """Normalised minimum detection cost (NIST SRE / VoxCeleb) and the threshold reaching it.

    DCF(t) = c_miss·P_miss(t)·p_target + c_fa·P_fa(t)·(1 − p_target), divided by
    min(c_miss·p_target, c_fa·(1 − p_target)) (the cost of the better trivial system), and
    minimised over all operating points; ties go to the lowest threshold.
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    thresholds, far, frr = _operating_points(*_check(scores, labels))
    dcf = c_miss * frr * p_target + c_fa * far * (1.0 - p_target)
    i = int(np.argmin(dcf))
    return float(dcf[i] / min(c_miss * p_target, c_fa * (1.0 - p_target))), float(thresholds[i])


def min_nontargets_for_far(far: float) -> int:
    """Non-target trials needed to resolve ``far``: ceil(1/far) (one false accept allowed)."""
    if not 0.0 < far <= 1.0:
        raise ValueError(f"far must be in (0, 1], got {far}")
    return math.ceil(1.0 / far - 1e-9)


def threshold_at_far(scores: Any, labels: Any, far: float) -> float:
    """The smallest threshold whose false-accept rate on the non-target scores is <= ``far``.

    Thresholds snap to non-target scores: the result is the lowest distinct non-target score
    ``t`` with #(non-target >= t) <= far·n_non (moving to the next lower distinct non-target
    score would exceed ``far``), or ``reject_all_threshold`` of the non-target scores when even
    the highest one is tied too often. Raises ValueError with fewer than ceil(1/far)
    non-target scores, where no false accept at all would be allowed and the FAR is unresolved.
    """
    s, y = _check(scores, labels)
    non = np.sort(s[~y])
    needed = min_nontargets_for_far(far)
    if non.size < needed:
        raise ValueError(f"FAR {far:g} needs at least {needed} non-target trials to resolve, got {non.size}")
    allowed = math.floor(far * non.size + 1e-9)  # false accepts we may make
    distinct = np.unique(non)
    accepted = non.size - np.searchsorted(non, distinct, side="left")  # falls with the score
    ok = np.flatnonzero(accepted <= allowed)
    return float(distinct[ok[0]]) if ok.size else reject_all_threshold(non)


def far_frr_at(scores: Any, labels: Any, threshold: float) -> tuple[float, float]:
    """(FAR, FRR) when accepting trials with score >= ``threshold``."""
    s, y = _check(scores, labels)
    accept = s >= threshold
    return float(np.mean(accept[~y])), float(np.mean(~accept[y]))


@dataclass(frozen=True)
class VerificationReport:
    """Summary of one trial list; thresholds use the accept-if-score->=-threshold rule.

    min_dcf maps p_target -> (normalised minDCF, threshold); thresholds_at_far maps a target
    FAR -> threshold, only for FARs the non-target count can resolve; frr_at_far the FRR there.
    """

    n_target: int
    n_nontarget: int
    eer: float
    eer_threshold: float
    min_dcf: Mapping[float, tuple[float, float]]
    thresholds_at_far: Mapping[float, float]
    frr_at_far: Mapping[float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; float keys become strings ("0.01")."""
        return {
            "n_target": self.n_target,
            "n_nontarget": self.n_nontarget,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "min_dcf": {f"{p:g}": {"value": v, "threshold": t} for p, (v, t) in self.min_dcf.items()},
            "thresholds_at_far": {f"{f:g}": t for f, t in self.thresholds_at_far.items()},
            "frr_at_far": {f"{f:g}": r for f, r in self.frr_at_far.items()},
        }


def verification_report(
    scores: Any, labels: Any, fars: Sequence[float] = DEFAULT_FARS, p_targets: Sequence[float] = DEFAULT_P_TARGETS
) -> VerificationReport:
    """EER, minDCF per p_target and thresholds per resolvable FAR for one trial list."""
    s, y = _check(scores, labels)
    n_non = int((~y).sum())
    rate, threshold = eer(s, y)
    at_far = {f: threshold_at_far(s, y, f) for f in fars if n_non >= min_nontargets_for_far(f)}
    return VerificationReport(
        n_target=int(y.sum()),
        n_nontarget=n_non,
        eer=rate,
        eer_threshold=threshold,
        min_dcf={p: min_dcf(s, y, p) for p in p_targets},
        thresholds_at_far=at_far,
        frr_at_far={f: far_frr_at(s, y, t)[1] for f, t in at_far.items()},
    )


_DET_TICKS = (0.0001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def plot_det(path: str | os.PathLike[str], curves: Mapping[str, tuple[Any, Any]], title: str = "DET") -> Path:
    """Write a DET plot PNG: FRR against FAR on normal-deviate (probit) axes, one line per
    ``curves`` entry (label -> (scores, labels)), each with its EER point marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from scipy.stats import norm

    lo, hi = 1e-4, 0.5
    fig = Figure(figsize=(5.5, 5.5))
    FigureCanvasAgg(fig)  # no pyplot: no global state, no display backend needed
    ax = fig.add_subplot()
    for label, (scores, labels) in curves.items():
        far, frr, _ = det_curve(scores, labels)
        rate, _ = eer(scores, labels)
        # Rates of 0 or 1 are ±inf on probit axes: clip them outside the visible range so
        # that the curve runs off the plot instead of along its edge.
        x, y = norm.ppf(np.clip(far, lo / 10, 0.9)), norm.ppf(np.clip(frr, lo / 10, 0.9))
        (line,) = ax.plot(x, y, label=f"{label} (EER {100 * rate:.2f}%)")
        e = norm.ppf(np.clip(rate, lo, hi))
        ax.plot([e], [e], "o", color=line.get_color())
    ticks = norm.ppf(_DET_TICKS)
    names = [f"{100 * t:g}" for t in _DET_TICKS]
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
    ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
    ax.plot([norm.ppf(lo), norm.ppf(hi)], [norm.ppf(lo), norm.ppf(hi)], ":", color="grey")
    ax.set_xlabel("False accept rate (%)")
    ax.set_ylabel("False reject rate (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
