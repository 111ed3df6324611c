"""``toitsu models …``: build the default model pack, list the model repository."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("models", help="the local model repository")
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = sub.add_parser("build-defaults", help="import, export, check and calibrate the default model pack (offline)")
    p.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models/)")
    p.add_argument("--work", type=Path, default=Path("build"), help="scratch folder for generated dev data")
    p.add_argument("--force", action="store_true", help="rebuild versions that already exist")
    p.set_defaults(run=build_defaults)
    p = sub.add_parser("list", help="models, versions, parity and calibration")
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=list_models)


def build_defaults(args: argparse.Namespace) -> int:
    from export.model_pack import build_default_pack
    from serving.offline import face_file_embedder, file_embedder, landmark_predictor

    build_default_pack(args.models, args.work, file_embedder, face_file_embedder, landmark_predictor,
                       force=args.force)
    return 0


def list_models(args: argparse.Namespace) -> int:
    from serving.models.repository import ModelRepository

    repo = ModelRepository(args.models)
    rows = []
    for name in repo.names():
        for version in repo.versions(name):
            card = repo.get(name, version).card
            cal = card.calibration_section
            rows.append({"name": name, "version": version, "modality": card.modality, "license": card.license,
                         "eer": cal.eer if cal else None,
                         "thresholds": {f"{t.far:g}": t.threshold for t in cal.thresholds} if cal else {}})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            extra = f"  EER {r['eer']:.2%}" if r["eer"] is not None else ""
            print(f"{r['name']:<24} v{r['version']:<3} {r['modality']:<8} {r['license']:<12}{extra}")
    return 0
