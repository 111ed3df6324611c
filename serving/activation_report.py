"""The side-by-side report of an activation: the old and the new model version compared on the
card's dev trials (the EER each card's calibration measured) and on the gallery itself — the
genuine and impostor score distributions of the very identities that were re-embedded.

Gallery scores, per version, over the identities present in both generations:

- genuine: each sample of an identity with at least 2 samples against the normalised mean of its
  *other* samples (leave-one-out, so a sample never scores against itself);
- impostor: a random sample of one identity against another identity's template (up to
  ``max_pairs`` random pairs, the same pairs for both versions).

Written as ``activation-report.json`` and ``activation-report.png`` (histograms, old beside new)
in the new generation's folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from contracts.atomic import write_json_atomic
from serving.activation_copy import Modality, Tally
from serving.gallery import Gallery
from serving.gallery import generations as gens
from serving.gallery import reembed as rx

log = logging.getLogger("toitsu.activation")


def gallery_scores(samples: dict[int, np.ndarray], rows: list[int], pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(genuine scores, impostor scores) for ``rows`` (see the module doc); ``pairs`` [P, 3] of
    (row index a, row index b, sample pick) with a != b."""
    genuine = []
    for row in rows:
        x = samples[row]
        if len(x) < 2:
            continue
        total = x.sum(axis=0)
        for i in range(len(x)):
            rest = total - x[i]
            norm = np.linalg.norm(rest)
            if norm > 1e-12:
                genuine.append(float(x[i] @ rest / norm))
    templates = {}
    for row in rows:
        mean = samples[row].mean(axis=0)
        templates[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    impostor = [
        float(samples[rows[a]][pick % len(samples[rows[a]])] @ templates[rows[b]]) for a, b, pick in pairs.tolist()
    ]
    return np.asarray(genuine, np.float64), np.asarray(impostor, np.float64)


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float | None:
    """Equal error rate of accept-if-score>=threshold; None without both kinds of score."""
    if not len(genuine) or not len(impostor):
        return None
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    frr = np.searchsorted(np.sort(genuine), thresholds, side="left") / len(genuine)
    far = 1.0 - np.searchsorted(np.sort(impostor), thresholds, side="left") / len(impostor)
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2)


def _summary(scores: np.ndarray) -> dict[str, float | int | None]:
    if not len(scores):
        return {"count": 0, "mean": None, "std": None, "p05": None, "p50": None, "p95": None}
    q = np.quantile(scores, [0.05, 0.5, 0.95])
    return {
        "count": int(len(scores)),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "p05": float(q[0]),
        "p50": float(q[1]),
        "p95": float(q[2]),
    }


def compare(
    old: Gallery,
    new: Gallery,
    *,
    old_card: dict[str, object],
    new_card: dict[str, object],
    folder: Path,
    max_pairs: int = 20_000,
    seed: int = 0,
) -> dict[str, object]:
    """Build, write (JSON + PNG in ``folder``) and return the comparison."""
    old_samples = rx.samples_of(old, rx.position(old)[1])
    new_samples = rx.samples_of(new, rx.position(new)[1])
    rows = sorted(set(old_samples) & set(new_samples))
    rng = np.random.default_rng(seed)
    pairs = np.zeros((0, 3), np.int64)
    if len(rows) >= 2:
        a = rng.integers(len(rows), size=max_pairs)
        b = (a + rng.integers(1, len(rows), size=max_pairs)) % len(rows)
        pairs = np.stack([a, b, rng.integers(1 << 30, size=max_pairs)], axis=1)
    report: dict[str, object] = {"identities_compared": len(rows)}
    scores = {}
    for name, samples, card in (("old", old_samples, old_card), ("new", new_samples, new_card)):
        genuine, impostor = gallery_scores(samples, rows, pairs)
        scores[name] = (genuine, impostor)
        report[name] = {
            **card,
            "gallery": {"genuine": _summary(genuine), "impostor": _summary(impostor), "eer": eer(genuine, impostor)},
        }
    folder = Path(folder)
    report["json"] = str(folder / "activation-report.json")
    try:
        report["plot"] = str(_plot(scores, report, folder / "activation-report.png"))
    except Exception as exc:  # a missing plotting library never fails an activation
        log.warning("activation report plot not written: %s", exc)
        report["plot"] = ""
    write_json_atomic(folder / "activation-report.json", report)
    return report


def _plot(scores: dict[str, tuple[np.ndarray, np.ndarray]], report: dict[str, object], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, name in zip(axes, ("old", "new")):
        genuine, impostor = scores[name]
        info = report[name]
        assert isinstance(info, dict)
        bins = np.linspace(-1.0, 1.0, 81)
        for values, label in ((impostor, "impostor"), (genuine, "genuine")):
            if len(values):
                ax.hist(values, bins=bins, alpha=0.6, density=True, label=f"{label} ({len(values)})")
        gallery_eer = info["gallery"]["eer"]
        card_eer = info.get("card_eer")
        title = f"{name}: {info.get('model')} v{info.get('version')}"
        sub = f"gallery EER {gallery_eer:.3f}" if gallery_eer is not None else "gallery EER n/a"
        if card_eer is not None:
            sub += f", dev-trials EER {card_eer:.3f}"
        ax.set_title(f"{title}\n{sub}", fontsize=9)
        ax.set_xlabel("cosine score")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def card_summary(card: object) -> dict[str, object]:
    """What the report says of one version from its card: name, version, dim, dev-trials EER."""
    calibration = getattr(card, "calibration_section", None)
    return {
        "model": getattr(card, "name", ""),
        "version": getattr(card, "version", 0),
        "dim": getattr(card, "embedding_dim", None),
        "card_eer": getattr(calibration, "eer", None),
        "dev_trials": getattr(calibration, "dev_trials", None),
    }


def load(folder: Path) -> dict[str, object] | None:
    path = Path(folder) / "activation-report.json"
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass
class ActivationReport:
    """What an activation (or rollback) did; ``to_dict()`` is its JSON form."""

    modality: str
    kind: str  # "activate" | "rollback"
    from_model: str
    from_version: int
    from_dim: int
    to_model: str
    to_version: int
    to_dim: int
    generation: str  # the active generation's folder now
    previous: str  # the generation a rollback would return to
    identities: int  # in the active gallery now
    reembedded: int
    samples: int
    changes_replayed: int  # rows replayed from the change log after the start
    without_media: dict[str, str] = field(default_factory=dict)  # identity → why it was not re-embedded
    policy: str = "refuse"
    dropped: list[str] = field(default_factory=list)
    kept_on_old: list[str] = field(default_factory=list)
    discarded: str = ""  # an older generation dropped to keep one previous
    seconds: float = 0.0
    writes_paused_seconds: float = 0.0
    comparison: dict[str, object] = field(default_factory=dict)
    yielded_seconds: float = 0.0  # of ``seconds``, paused between chunks for live traffic

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def build_report(
    name: str,
    kind: str,
    tally: Tally,
    old: Modality,
    new: Modality,
    root: Path,
    policy: str,
    started: float,
    paused: float,
    discarded: str,
) -> ActivationReport:
    """The report of a finished switch (``root``: the modality's gallery root, ACTIVE just written);
    the comparison is written into the new active generation's folder."""
    state = gens.read_state(root)
    assert state is not None and state.previous is not None  # just written by _switch
    comparison: dict[str, object] = {}
    try:
        comparison = compare(
            old.gallery,
            new.gallery,
            old_card=card_summary(old.card),
            new_card=card_summary(new.card),
            folder=state.active.path(root),
        )
    except Exception as exc:  # the swap is done; a report failure is reported, not raised
        log.exception("%s: the activation report failed", name)
        comparison = {"error": str(exc)}
    skipped = sorted(tally.skipped)
    report = ActivationReport(
        name,
        kind,
        old.gallery.binding.name,
        old.gallery.binding.version,
        old.gallery.dim,
        new.binding.name,
        new.binding.version,
        new.gallery.dim,
        state.active.folder,
        state.previous.folder,
        len(new.gallery),
        tally.reembedded,
        tally.samples,
        tally.changes,
        dict(tally.skipped),
        policy,
        skipped if policy == "drop" else [],
        skipped if policy == "keep-old" else [],
        discarded,
        time.monotonic() - started,
        paused,
        comparison,
        tally.yielded_seconds,
    )
    return report
