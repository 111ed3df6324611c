"""``toitsu`` — one console script, subcommands registered by the modules in ``toitsu/commands``.

Client commands take ``--target HOST:PORT`` (default ``$TOITSU_TARGET`` or 127.0.0.1:50051) and
``--json`` for machine-readable output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from toitsu.commands import audit, data, face, gallery, health, models, redteam, serve, sound, speaker, tokens, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toitsu", description="Speaker, face and sound embeddings over gRPC.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, health, speaker, sound, face, models, gallery, train, data, tokens, audit, redteam):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `toitsu speaker list | head`
        sys.stderr.close()
        return 0
