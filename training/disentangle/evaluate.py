"""The §7 evaluation: MIG per group and on the merged data, the head's purity and NMI against
the hidden group ids, and PNG latent traversals.

Which latents a group's MIG reads: for the group-block VAE, the block of the group's majority
predicted group (the block the head sends most of its images to); for the β-VAE, the whole
latent. Each group's factors are scored on that group's images only. The merged MIG is the mean
gap over every factor of every group (so each factor weighs the same, as within one group).
Traversals: one PNG per block (method) or per ``block``-wide slice of the β-VAE latent, rows =
that block's dims, columns = the dim swept over ``[-span, span]`` from a reference image's μ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

from training.disentangle.groups import MergedImages
from training.disentangle.mig import mig
from training.disentangle.models import BetaVAE
from training.generative.evaluate import save_grid


def purity(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Σ over predicted clusters of their most common true label's count, over N."""
    total = 0
    for c in np.unique(predicted):
        total += np.bincount(truth[predicted == c]).max()
    return float(total / len(truth))


@torch.no_grad()
def traversal(model: BetaVAE, reference: np.ndarray, dims: range, steps: int, span: float) -> np.ndarray:
    """Images [len(dims) · steps, 3, S, S]: row d sweeps latent dim d of ``reference``'s μ; the
    method keeps only the swept dim's block active, as its decoder always sees."""
    mu, predicted = model.codes(torch.from_numpy(reference[None]))
    base = mu[0]
    mask = torch.zeros_like(base)
    mask[dims.start : dims.stop] = 1.0
    if predicted is None:
        mask[:] = 1.0
    rows = []
    for d in dims:
        z = (base * mask).repeat(steps, 1)
        z[:, d] = torch.linspace(-span, span, steps)
        rows.append(model.decode_latent(z))
    return torch.cat(rows).numpy()


def evaluate_model(
    model: BetaVAE,
    data: MergedImages,
    out_dir: Path,
    *,
    name: str,
    bins: int = 20,
    steps: int = 9,
    span: float = 2.5,
) -> dict[str, Any]:
    """The report (also ``out_dir/report.json``) and ``out_dir/traversal-*.png``."""
    model = model.eval()
    mu_t, predicted_t = model.codes(torch.from_numpy(data.images))
    mu = mu_t.numpy()
    block = model.block
    predicted = None if predicted_t is None else predicted_t.numpy()
    per_group: dict[str, Any] = {}
    gaps: list[float] = []
    for g, group_name in enumerate(data.names):
        rows = data.groups == g
        _, factors = data.of_group(g)
        if predicted is None:
            chosen, codes = None, mu[rows]
        else:
            chosen = int(np.bincount(predicted[rows], minlength=model.groups).argmax())
            codes = mu[rows][:, chosen * block : (chosen + 1) * block]
        value, group_gaps = mig(codes, factors, bins)
        gaps += group_gaps
        per_group[group_name] = {
            "mig": value,
            "gaps": dict(zip(data.factor_names[g], group_gaps)),
            "block": chosen,
            "images": int(rows.sum()),
        }
    report: dict[str, Any] = {
        "name": name,
        "model": type(model).__name__,
        "mig": float(np.mean(gaps)),
        "mig_by_group": {k: v["mig"] for k, v in per_group.items()},
        "groups": per_group,
        "purity": None if predicted is None else purity(data.groups, predicted),
        "nmi": None if predicted is None else float(normalized_mutual_info_score(data.groups, predicted)),
        "images": len(data),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = []
    for b in range(model.groups):
        # The reference: an image of the group whose block this is (method), or of group b.
        owner = [g for g, v in enumerate(per_group.values()) if v["block"] == b] if predicted is not None else [b]
        g = owner[0] if owner else b % len(data.names)
        reference = data.images[np.flatnonzero(data.groups == g)[0]]
        images = traversal(model, reference, range(b * block, (b + 1) * block), steps, span)
        label = "block" if predicted is not None else "slice"
        pictures.append(save_grid(images, out_dir / f"traversal-{label}{b}-{data.names[g]}.png", steps).name)
    report["traversals"] = pictures
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report
