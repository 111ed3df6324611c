"""Print what the model pack's cards record: every parity check and every calibration.

``make models`` prints these figures while it builds; a cached pack builds nothing, so this reads
them back from ``models/<name>/<version>/card.json`` (the figures the README's *Measured* table
quotes for ``make models``). The bounds next to each figure are enforced by the build itself
(export refuses a version above them) and again by ``tests/export/test_default_pack.py``.

    .venv/bin/python bench/pack_cards.py --models models          # JSON in bench/results/pack_cards.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    args = _parse()
    from contracts.card import card_json
    from serving.models.repository import ModelRepository

    repo = ModelRepository(args.models)
    report = {}
    for name in repo.names():
        for version in repo.versions(name):
            raw = card_json(repo.get(name, version).card)
            report[f"{name} v{version}"] = {
                "parity": raw.get("parity", {}).get("checks", []),
                "calibration": _calibration(raw.get("calibration")),
            }
    for model, entry in report.items():
        print(model)
        for c in entry["parity"]:
            print(
                f"  parity {c['check']:<16} cases {c['cases']:>4}  max|Δ| {c['max_abs_diff']:.2g}  "
                f"min cos {c['min_cosine']:.6f}"
            )
        cal = entry["calibration"]
        if cal:
            print(
                f"  calibration on {cal['dev_trials']}: {cal['n_target']:,} target / {cal['n_nontarget']:,} "
                f"non-target trials, EER {cal['eer']:.2%}"
            )
            for t in cal["thresholds"]:
                print(f"    FAR {t['far']:.2%}: threshold {t['threshold']:.4f}, FRR {t['frr']:.1%}")
            for key, values in cal["eer_by"].items():
                print(f"    {key}: " + ", ".join(f"{k} {v:.1%}" for k, v in sorted(values.items())))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


def _calibration(cal: dict | None) -> dict | None:
    """The calibration figures, without the long lists (refused files, cohorts)."""
    if not cal:
        return None
    keep = ("dev_trials", "n_target", "n_nontarget", "eer", "eer_threshold", "thresholds", "min_dcf")
    return {
        **{k: cal[k] for k in keep if k in cal},
        "eer_by": {f"eer_by_{g['by']}": g["eer"]} if (g := cal.get("eer_by_group")) else {},
    }


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pack_cards.json")
    return parser.parse_args()


if __name__ == "__main__":
    main()
