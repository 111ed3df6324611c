"""``toitsu redteam speaker --target HOST:PORT``: the black-box attack through a running gateway.

Every check (ε and query ranges, the trials, their files, the model name, the gateway answering
and serving that model) happens before anything is written: a bad input exits 1 with a message
and leaves no report folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _model(text: str) -> tuple[str, int | None]:
    name, _, version = text.partition(":")
    if not name or (version and not version.isdigit()):
        raise ValueError(f"--model {text!r}: expected NAME or NAME:VERSION")
    return name, int(version) if version else None


def _trials(args: argparse.Namespace):
    from toitsu.redteam_gateway import GatewayTrial, read_probe

    if not args.trial:
        raise ValueError("--target needs at least one --trial SPEAKER_ID=FILE")
    out = []
    for text in args.trial:
        speaker_id, sep, file = text.partition("=")
        if not sep or not speaker_id or not file:
            raise ValueError(f"--trial {text!r}: expected SPEAKER_ID=FILE")
        out.append(GatewayTrial(speaker_id, Path(file), read_probe(Path(file), args.max_seconds)))
    return out


def blackbox(args: argparse.Namespace) -> int:
    from export.redteam_ranges import check_queries, check_ranges
    from export.redteam_report import plot_queries, write_report
    from toitsu.client import channel
    from toitsu.redteam_gateway import GatewayError, attack_gateway
    from training.redteam.spsa import SpsaSettings

    try:
        check_ranges(args.eps, [1])
        check_queries(args.queries)
        if not 1 <= args.directions <= 64:
            raise ValueError(f"--directions {args.directions} is out of range [1, 64]")
        if not 0.1 <= args.max_seconds <= 60:
            raise ValueError(f"--max-seconds {args.max_seconds:g} is out of range [0.1, 60]")
        name, version = _model(args.model)
        trials = _trials(args)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    settings = SpsaSettings(directions=args.directions, seed=args.seed)
    print(f"black-box attack on {args.model} through {args.target}: {len(trials)} trial(s)", flush=True)
    try:
        grid = attack_gateway(
            channel(args.target, args),
            trials,
            name,
            version,
            args.eps,
            args.queries,
            args.far,
            settings,
            args.timeout,
            progress=not args.no_progress,
        )
    except GatewayError as exc:
        raise SystemExit(f"error: {args.target}: {exc}") from None
    served = grid["served"]
    report = {
        "model": served["name"],
        "version": served["version"],
        "mode": "black-box through a gateway: SpeakerService.Verify only (score and decision), raw float32 PCM",
        "target": args.target,
        "far": args.far,
        "scoring": grid["scoring"],
        "optimiser": {
            "name": "spsa_lbfgs",
            "directions": settings.directions,
            "c": "eps/25",
            "memory": settings.memory,
            "backtracks": settings.backtracks,
            "seed": settings.seed,
        },
        "trials": {"count": len(trials), "max_seconds": args.max_seconds},
        "command": " ".join(["toitsu", *sys.argv[1:]]) if sys.argv[0].endswith("toitsu") else None,
        **{k: v for k, v in grid.items() if k not in ("served", "scoring")},
    }
    folder = args.out or args.work / "redteam" / f"{served['name']}-v{served['version']}-blackbox"
    out = write_report(report, folder, plots=plot_queries)
    for r in report["results"]:
        snr = f"{r['snr_db_median']:.1f} dB" if r["snr_db_median"] is not None else "-"
        q = f"{r['queries_to_success_mean']:.1f}" if r["queries_to_success_mean"] is not None else "-"
        print(
            f"  spsa_lbfgs  ε {r['eps']:<7g} queries {r['budget']:<5} success {r['successes']}/{r['trials']}"
            f"  SNR {snr:<9} queries to success {q}"
        )
    print(f"{report['queries_total']} Verify queries in all; wrote {out}")
    return 0
