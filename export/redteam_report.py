"""The red team's report folder: ``report.json`` and three PNG plots (matplotlib's Agg canvas, no pyplot).

- ``success-vs-eps.png``: success rate against ε at the largest budget, one line per attack;
- ``success-vs-evaluations.png``: success rate against the budget at the largest ε;
- ``snr.png``: the SNR (dB) of the successful perturbations, one histogram per attack.

A black-box report (``--target``) has ``success-vs-queries.png`` instead: the fraction of trials
accepted within q queries against q, one line per ε (from each trial's queries to success).

The folder is assembled beside its destination and renamed into place, so a run that fails
half-way leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPORT_FILE = "report.json"
PLOTS = ("success-vs-eps.png", "success-vs-evaluations.png", "snr.png")
QUERY_PLOT = "success-vs-queries.png"


def _figure(title: str, xlabel: str, ylabel: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5))
    FigureCanvasAgg(fig)  # no pyplot: no global state, no display backend needed
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _by_attack(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r["attack"]), []).append(r)
    return out


def plot_report(report: Mapping[str, Any], out: Path) -> list[Path]:
    rows = report["results"]
    top_budget, top_eps = max(r["budget"] for r in rows), max(r["eps"] for r in rows)
    fig, ax = _figure(f"{report['model']}: success at {top_budget} evaluations", "ε (L∞, full scale 1)", "success rate")
    for attack, rs in _by_attack([r for r in rows if r["budget"] == top_budget]).items():
        rs = sorted(rs, key=lambda r: r["eps"])
        ax.plot([r["eps"] for r in rs], [r["success_rate"] for r in rs], "o-", label=attack)
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    ax.legend()
    fig.savefig(out / PLOTS[0], dpi=100)
    fig, ax = _figure(f"{report['model']}: success at ε = {top_eps:g}", "gradient evaluations (budget)", "success rate")
    for attack, rs in _by_attack([r for r in rows if r["eps"] == top_eps]).items():
        rs = sorted(rs, key=lambda r: r["budget"])
        ax.plot([r["budget"] for r in rs], [r["success_rate"] for r in rs], "o-", label=attack)
    ax.set_ylim(-0.05, 1.05)
    ax.legend()
    fig.savefig(out / PLOTS[1], dpi=100)
    fig, ax = _figure(f"{report['model']}: SNR of successful perturbations", "SNR (dB)", "count")
    for attack, rs in _by_attack(rows).items():
        snr = [s for r in rs for s in r["snr_db"]]
        if snr:
            ax.hist(snr, bins=20, alpha=0.5, label=attack)
    ax.legend()
    fig.savefig(out / PLOTS[2], dpi=100)
    return [out / p for p in PLOTS]


def plot_queries(report: Mapping[str, Any], out: Path) -> list[Path]:
    trials, top = report["per_trial"], max(r["budget"] for r in report["results"])
    fig, ax = _figure(f"{report['model']} through a gateway: success against queries", "queries", "success rate")
    for eps in sorted({t["eps"] for t in trials}):
        rows = [t for t in trials if t["eps"] == eps]
        hits = sorted(t["queries_to_success"] for t in rows if t["success"])
        xs = [0, *hits, top]
        ys = [0.0, *((i + 1) / len(rows) for i in range(len(hits))), len(hits) / len(rows)]
        ax.step(xs, ys, where="post", label=f"ε = {eps:g}")
    ax.set_ylim(-0.05, 1.05)
    ax.legend()
    fig.savefig(out / QUERY_PLOT, dpi=100)
    return [out / QUERY_PLOT]


def write_report(
    report: Mapping[str, Any],
    out_dir: Path,
    plots: Callable[[Mapping[str, Any], Path], list[Path]] = plot_report,
) -> Path:
    """Write ``out_dir`` (replacing an older report there) with the JSON and ``plots``; returns it."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        plots(report, staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
