"""``toitsu models …``: build the default model pack, list models; the lifecycle commands (train, jobs,
watch, cancel, export) are ModelService clients in ``toitsu.commands.lifecycle``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("models", help="the local model repository")
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = sub.add_parser("build-defaults", help="import, export, check and calibrate the default model pack (offline)")
    p.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models/)")
    p.add_argument("--work", type=Path, default=Path("build"), help="scratch folder for generated dev data")
    p.add_argument("--force", action="store_true", help="rebuild versions that already exist")
    p.add_argument(
        "--part",
        action="append",
        default=[],
        metavar="PART",
        help="build only this part of the pack: speaker, face or sound (repeatable; default: all)",
    )
    p.add_argument(
        "--background",
        action="append",
        default=[],
        metavar="PART",
        help="build this part in a separate low-priority process, started once the others are built, "
        "and return (repeatable; `make serve` does this for sound, which a gateway serves once "
        "it is published)",
    )
    p.add_argument(
        "--log", type=Path, default=None, help="the background build's output (default: WORK/logs/build-PART.log)"
    )
    p.add_argument(
        "--robustness",
        action="store_true",
        help="add the red team's summary (L-BFGS-B success at ε 0.001 / 0.002, 50 evaluations) to the "
        "speaker cards: a few CPU minutes per model, so off by default",
    )
    p.add_argument("--held-lock", action="append", default=[], help=argparse.SUPPRESS)  # PART=FD, from --background
    p.set_defaults(run=build_defaults)
    from toitsu.client import client_options
    from toitsu.commands import lifecycle

    p = sub.add_parser(
        "list", parents=[client_options()], help="the gateway's models, versions, calibration and active versions"
    )
    p.add_argument("--local", action="store_true", help="read a model repository folder instead (no gateway)")
    p.add_argument("--models", type=Path, default=Path("models"), help="with --local: the folder (default: models/)")
    p.set_defaults(run=lambda args: list_models(args) if args.local else lifecycle.list_remote(args))
    lifecycle.register(sub)


def build_defaults(args: argparse.Namespace) -> int:
    from export.model_pack import PARTS

    parts = args.part or list(PARTS)
    unknown = sorted(set(parts + args.background) - set(PARTS))
    if unknown:
        raise SystemExit(f"error: unknown part(s) {', '.join(unknown)} (known: {', '.join(PARTS)})")
    held = dict(_held_lock(item) for item in args.held_lock)
    if held:  # this is the background build: leave the cores to the gateway's requests first
        os.nice(10)
    for part in PARTS:
        if part in parts and part not in args.background:
            _build_part(args, part, held.get(part))
    background = [part for part in PARTS if part in args.background]
    if background:
        _start_background(args, background)
    return 0


def _build_part(args: argparse.Namespace, part: str, held_fd: int | None) -> None:
    """Build one part under its lock, so a gateway waits for it and two builds never overlap."""
    from export.model_pack import PART_MODELS, build_default_pack, missing_models
    from serving.loader import BuildLock
    from serving.offline import face_file_embedder, file_embedder, landmark_predictor

    lock: BuildLock | None
    lock = BuildLock(
        args.models, part, PART_MODELS[part], log=_log_text(args.log) if held_fd is not None else "", fd=held_fd
    )
    if held_fd is None:
        if not args.force and not missing_models(args.models, [part]):
            lock = None  # nothing to build: no lock to take or wait for
        elif not lock.acquire(wait=False):
            holder = lock.holder()
            print(
                f"{part}: waiting for the build in pid {holder.get('pid')} (log: {holder.get('log') or '-'})",
                flush=True,
            )
            lock.acquire(wait=True)
    try:
        if lock is not None:
            lock.write("running")
        build_default_pack(
            args.models,
            args.work,
            file_embedder,
            face_file_embedder,
            landmark_predictor,
            force=args.force,
            parts=[part],
            robustness=getattr(args, "robustness", False),
        )
    except KeyboardInterrupt:
        if lock is not None:
            lock.write("interrupted")
        raise
    except BaseException:
        if lock is None:
            raise
        # The traceback goes to the log before the state says "failed" and the lock is released:
        # whoever sees the failure (a gateway, `models list`) then reads a complete log.
        traceback.print_exc()
        sys.stderr.flush()
        lock.write("failed")
        raise SystemExit(1) from None
    else:
        if lock is not None:
            lock.write("published")
    finally:
        if lock is not None:
            lock.release()


def _start_background(args: argparse.Namespace, parts: list[str]) -> None:
    """Start ``toitsu models build-defaults --part …`` as its own process holding the parts' locks,
    taken here first, so a gateway started right after this returns already sees a build running."""
    from export.model_pack import PART_MODELS, missing_models
    from serving.loader import BuildLock

    log = args.log or args.work / "logs" / f"build-{'-'.join(parts)}.log"
    locks: dict[str, BuildLock] = {}
    for part in parts:
        if not args.force and not missing_models(args.models, [part]):
            print(f"{part}: already built ({', '.join(PART_MODELS[part])})")
            continue
        lock = BuildLock(args.models, part, PART_MODELS[part], log=_log_text(log))
        if lock.acquire(wait=False):
            locks[part] = lock
        else:
            holder = lock.holder()
            print(f"{part}: already being built by pid {holder.get('pid')} (log: {holder.get('log') or '-'})")
    if not locks:
        return
    command = [
        sys.executable,
        "-m",
        "toitsu",
        "models",
        "build-defaults",
        "--models",
        str(args.models),
        "--work",
        str(args.work),
        "--log",
        str(log),
        *(["--force"] if args.force else []),
        *(["--robustness"] if getattr(args, "robustness", False) else []),
        *(f"--part={part}" for part in locks),
        *(f"--held-lock={part}={lock.fd}" for part, lock in locks.items()),
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # Same process group as the caller: Ctrl-C on `make serve` stops the build too (it resumes
        # from its last checkpoint next time) instead of leaving a CPU-bound orphan behind.
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=[lock.fd for lock in locks.values() if lock.fd is not None],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    for lock in locks.values():
        lock.write("running", pid=child.pid)
        lock.release()  # the child's inherited descriptor keeps the lock until it exits
    print(
        f"{', '.join(locks)}: building in the background (pid {child.pid}, log {log}); "
        "a running gateway serves it once it is published",
        flush=True,
    )


def _held_lock(item: str) -> tuple[str, int]:
    part, _, fd = item.partition("=")
    os.set_inheritable(int(fd), False)  # not into sox, espeak-ng or other tools the build runs
    return part, int(fd)


def _log_text(log: Path | None) -> str:
    return str(log.resolve()) if log is not None else ""


def list_models(args: argparse.Namespace) -> int:
    from serving.models.repository import ModelRepository

    repo = ModelRepository(args.models)
    rows = []
    for name in repo.names():
        for version in repo.versions(name):
            card = repo.get(name, version).card
            cal = card.calibration_section
            rows.append(
                {
                    "name": name,
                    "version": version,
                    "modality": card.modality,
                    "license": card.license,
                    "eer": cal.eer if cal else None,
                    "thresholds": {f"{t.far:g}": t.threshold for t in cal.thresholds} if cal else {},
                    "robustness": _robustness(card),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            extra = f"  EER {r['eer']:.2%}" if r["eer"] is not None else ""
            robustness: dict[str, Any] | None = r["robustness"]  # type: ignore[assignment]
            if robustness:
                extra += "  attack@50 " + " ".join(
                    f"ε{p['eps']:g}:{p['success_rate']:.0%}/{p['trials']}" for p in robustness["points"]
                )
            print(f"{r['name']:<24} v{r['version']:<3} {r['modality']:<8} {r['license']:<12}{extra}")
    return 0


def _robustness(card: object) -> dict[str, Any] | None:
    """The card's red-team summary as JSON (speaker cards exported with ``--robustness``), else None."""
    section = getattr(card, "robustness", None)
    return section.model_dump(mode="json") if section is not None else None
