"""``toitsu data …``: manifests for training (JSONL, DESIGN §4)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("data", help="build training manifests")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="KIND")
    p = sub.add_parser(
        "voxceleb", help="a manifest from a local VoxCeleb1/2 tree (wav/<id>/<video>/<n>.wav, dev/aac/…)"
    )
    p.add_argument("root", type=Path)
    p.add_argument("--dataset", choices=("vox1", "vox2"), required=True)
    p.add_argument("--split", default="train", help="the manifest's split label (default: train)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=voxceleb)
    p = sub.add_parser("synthetic-speech", help="the generated multi-speaker corpus (espeak-ng voices, offline)")
    p.add_argument("--out", type=Path, default=Path("build/speech-corpus"))
    p.add_argument("--speakers", type=int, default=240)
    p.add_argument("--utterances", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=synthetic)


def voxceleb(args: argparse.Namespace) -> int:
    from training.data.voxceleb import build_voxceleb_manifest

    print(build_voxceleb_manifest(args.root, args.out, dataset=args.dataset, split=args.split))
    return 0


def synthetic(args: argparse.Namespace) -> int:
    from training.data.speech_corpus import build_speech_corpus
    from training.recipes.speaker import SyntheticCorpus

    effects = SyntheticCorpus().effects
    print(build_speech_corpus(args.out, args.speakers, args.utterances, args.seed, effects=effects))
    return 0
