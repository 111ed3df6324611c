"""``toitsu redteam speaker``: METHODS §3's adversarial attacks on a served speaker model, locally
(white-box, on its torch twin: ``export/redteam.py``) or, with ``--target``, black-box through a
running gateway's Verify RPC (``toitsu/redteam_gateway.py``); writes ``report.json`` and plots.

Bad input (unknown or non-speaker model, no torch twin, ε or budget out of range, bad trials)
exits 1 with a message before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None


def register(commands: argparse._SubParsersAction) -> None:
    from export.redteam_ranges import ATTACKS, BUDGETS, DEFAULT_FAR, EPSILONS, QUERY_BUDGETS
    from toitsu.client import client_options

    parser = commands.add_parser("redteam", help="adversarial attacks on served models (METHODS §3)")
    sub = parser.add_subparsers(dest="redteam_command", required=True, metavar="TARGET")
    p = sub.add_parser(
        "speaker",
        parents=[client_options()],
        help="impersonation attacks on a speaker model: white-box on its torch twin, or through a gateway (--target)",
    )
    p.set_defaults(target=None)  # black-box only when --target is given (not from $TOITSU_TARGET)
    p.add_argument("--model", required=True, metavar="NAME[:VERSION]", help="a speaker model of the repository")
    p.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models/)")
    p.add_argument("--work", type=Path, default=Path("build"), help="where the default dev set lives (build/)")
    p.add_argument(
        "--trials", type=Path, help="a dev trial folder (or its trials.txt; default: WORK/dev-speech, the export's)"
    )
    p.add_argument("--eps", type=_floats, default=list(EPSILONS), help="L∞ bounds, comma-separated (METHODS §3's)")
    p.add_argument("--budget", type=_ints, default=list(BUDGETS), help="gradient-evaluation budgets, comma-separated")
    p.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated subset of {', '.join(ATTACKS)}")
    p.add_argument("--count", type=int, default=4, help="test trials (non-target pairs) to attack")
    p.add_argument("--dev-count", type=int, default=1, help="other trials, for Adam's step size only")
    p.add_argument("--max-seconds", type=float, default=2.0, help="probes are cut to this length")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--far", type=float, default=DEFAULT_FAR, help="τ = the card's threshold at this FAR")
    p.add_argument("--out", type=Path, help="report folder (default: WORK/redteam/NAME-vVERSION)")
    p.add_argument("--no-progress", action="store_true")
    box = p.add_argument_group("black-box (with --target)")
    box.add_argument(
        "--trial",
        action="append",
        default=[],
        metavar="SPEAKER_ID=FILE",
        help="an enrolled speaker and an impostor's 16 kHz recording to push into it (repeatable)",
    )
    box.add_argument("--queries", type=_ints, default=list(QUERY_BUDGETS), help="Verify-query budgets, comma-separated")
    box.add_argument("--directions", type=int, default=2, help="SPSA directions averaged per gradient estimate")
    p.set_defaults(run=speaker)


def _dev(args: argparse.Namespace):
    from export.speaker_dev import dev_trials
    from training.data.speech_corpus import load_dev_trials

    if args.trials is None:
        return dev_trials(args.work)[0]
    folder = args.trials.parent if args.trials.is_file() else args.trials
    try:
        return load_dev_trials(folder)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: --trials {args.trials}: {exc}") from None


def speaker(args: argparse.Namespace) -> int:
    if args.target is not None:
        from toitsu.commands.redteam_blackbox import blackbox

        return blackbox(args)
    from export.redteam import RedTeamError, impostor_trials, load_twin
    from export.redteam_ranges import KAPPA, check_attacks, check_ranges
    from export.redteam_report import write_report
    from export.redteam_run import attack_grid

    attacks = [a for a in args.attacks.split(",") if a]
    try:  # every check before the (slow) model load and before anything is written
        check_ranges(args.eps, args.budget)
        check_attacks(attacks)
        if args.count < 1 or args.dev_count < (1 if "adam" in attacks else 0):
            raise ValueError("--count must be ≥ 1 (and --dev-count ≥ 1 with adam)")
        if not 0.1 <= args.max_seconds <= 60:
            raise ValueError(f"--max-seconds {args.max_seconds:g} is out of range [0.1, 60]")
        twin = load_twin(args.models, args.model, args.far)
    except (RedTeamError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    dev = _dev(args)
    trials = impostor_trials(twin.encoder, dev, args.count + args.dev_count, args.seed, args.max_seconds)
    if len(trials) < args.count + args.dev_count:
        raise SystemExit(f"error: {dev.name} has only {len(trials)} distinct-target non-target trials")
    test, dev_split = trials[: args.count], trials[args.count :]
    print(f"{twin.name} v{twin.version}: τ = {twin.tau:.4f} (FAR {twin.far:g}); {len(test)} test trials", flush=True)
    grid = attack_grid(
        twin.encoder, test, dev_split, twin.tau, KAPPA, args.eps, args.budget, attacks, progress=not args.no_progress
    )
    report = {
        "model": twin.name,
        "version": twin.version,
        "mode": "white-box (torch twin, front end included, VAD left out)",
        "threshold": twin.tau,
        "far": twin.far,
        "kappa": KAPPA,
        "trials": {
            "dev_set": dev.name,
            "test": len(test),
            "dev_for_step_sizes": len(dev_split),
            "seed": args.seed,
            "max_seconds": args.max_seconds,
        },
        "command": " ".join(["toitsu", *sys.argv[1:]]) if sys.argv[0].endswith("toitsu") else None,
        **grid,
    }
    out = write_report(report, args.out or args.work / "redteam" / f"{twin.name}-v{twin.version}")
    for r in report["results"]:
        snr = f"{r['snr_db_median']:.1f} dB" if r["snr_db_median"] is not None else "-"
        evals = f"{r['evaluations_to_success_mean']:.1f}" if r["evaluations_to_success_mean"] is not None else "-"
        print(
            f"  {r['attack']:<12} ε {r['eps']:<7g} budget {r['budget']:<4} success {r['successes']}/{r['trials']}"
            f"  SNR {snr:<9} evals {evals}"
        )
    print(f"wrote {out}")
    return 0
