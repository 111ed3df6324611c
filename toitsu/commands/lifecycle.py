"""``toitsu models list | train | jobs | watch | cancel | export``: clients of ``ModelService``.

``watch`` (and ``train --watch``, ``export``) draws a progress bar from the job's events and
re-attaches after a dropped connection from the last sequence number it saw, so no event is
skipped or shown twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from protos.v1 import model_pb2, model_pb2_grpc
from toitsu.client import channel, client_options, emit, rpc_call, to_dict

_RETRY_SECONDS = 60.0  # how long watch keeps re-attaching to a gateway that went away


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ModelService client commands to ``toitsu models``."""
    common = client_options()
    p = sub.add_parser("train", parents=[common], help="start a training job on the gateway")
    p.add_argument(
        "recipe", help="a recipe name under the gateway's recipes/ (speaker/synthetic-gcl-sup) or a local YAML file"
    )
    p.add_argument("overrides", nargs="*", metavar="SECTION.KEY=VALUE")
    p.add_argument("--processes", type=int, default=1, help="> 1: torchrun with this many processes")
    p.add_argument("--name", default="", help="a label for the job")
    p.add_argument("--watch", action="store_true", help="follow the job to its end")
    p.set_defaults(run=train)
    p = sub.add_parser("jobs", parents=[common], help="training and export jobs")
    p.set_defaults(run=jobs)
    p = sub.add_parser("watch", parents=[common], help="follow a job (progress bar) until it ends")
    p.add_argument("job")
    p.add_argument("--after", type=int, default=0, help="start after this event sequence number")
    p.set_defaults(run=watch)
    p = sub.add_parser("cancel", parents=[common], help="cancel a queued or running job")
    p.add_argument("job")
    p.set_defaults(run=cancel)
    p = sub.add_parser(
        "export", parents=[common], help="publish a finished training job or run as the next model version"
    )
    p.add_argument("source", help="a training job id (0003-train) or a run folder on the gateway's machine")
    p.add_argument("--name", default="", help="model name (default: the recipe's export_name)")
    p.add_argument("--detach", action="store_true", help="return once the export job is queued")
    p.set_defaults(run=export)
    p = sub.add_parser(
        "activate", parents=[common], help="re-embed a modality's gallery with a version and switch to it"
    )
    p.add_argument("modality", choices=("speaker", "sound", "face"))
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument(
        "--missing-media",
        choices=list(_POLICIES),
        default="refuse",
        help="identities without stored media: refuse (default: list them, change nothing), drop, keep-old",
    )
    p.add_argument("--watch", action="store_true", help="show the re-embed's progress (otherwise wait quietly)")
    p.set_defaults(run=activate)
    p = sub.add_parser("rollback", parents=[common], help="switch a modality back to its previous gallery")
    p.add_argument("modality", choices=("speaker", "sound", "face"))
    p.set_defaults(run=rollback)
    p = sub.add_parser("purge", parents=[common], help="delete a modality's previous gallery")
    p.add_argument("modality", choices=("speaker", "sound", "face"))
    p.set_defaults(run=purge)


_POLICIES = {"refuse": model_pb2.REFUSE, "drop": model_pb2.DROP, "keep-old": model_pb2.KEEP_OLD}


def _stub(args: argparse.Namespace) -> model_pb2_grpc.ModelServiceStub:
    return model_pb2_grpc.ModelServiceStub(channel(args.target, args))


def list_remote(args: argparse.Namespace) -> int:
    reply = rpc_call(args, lambda: _stub(args).ListModels(model_pb2.ListModelsRequest(), timeout=args.timeout))
    payload = to_dict(reply)

    def human(p: dict[str, Any]) -> str:
        active = {(a["model"]["name"], int(a["model"]["version"])): a["modality"] for a in p["active"]}
        lines = []
        for m in p["models"]:
            key = (m["model"]["name"], int(m["model"]["version"]))
            eer = f"EER {100 * m['eer']:.2f}%" if m["calibrated"] else "uncalibrated"
            mark = f"  ← active {active[key]}" if key in active else ""
            robustness = m.get("robustness")
            if robustness:  # the same summary `models list --local` prints
                eer += f"  attack@{robustness['points'][0]['budget']} " + " ".join(
                    f"ε{p['eps']:g}:{p['success_rate']:.0%}/{p['trials']}" for p in robustness["points"]
                )
            lines.append(
                f"{key[0]:<24} v{key[1]:<3} {m['modality']:<15} {m['embedding_dim'] or '-':>4}  {eer:<13}{mark}"
            )
        return "\n".join(lines) or "no models"

    emit(args, payload, human)
    return 0


def train(args: argparse.Namespace) -> int:
    request = model_pb2.StartTrainingRequest(overrides=args.overrides, processes=args.processes, name=args.name)
    local = Path(args.recipe)
    if local.suffix in (".yaml", ".yml") and local.is_file():
        request.recipe_yaml, request.name = local.read_text(), args.name or local.stem
    else:
        request.recipe_name = args.recipe
    job = rpc_call(args, lambda: _stub(args).StartTraining(request, timeout=max(args.timeout, 180.0)))
    if not args.watch:
        emit(args, to_dict(job), lambda p: f"{p['id']}: {p['state'].lower()} ({p['total_steps']} steps)")
        return 0
    return _follow(args, job.id, 0)


def jobs(args: argparse.Namespace) -> int:
    reply = rpc_call(args, lambda: _stub(args).ListJobs(model_pb2.ListJobsRequest(), timeout=args.timeout))

    def human(p: dict[str, Any]) -> str:
        rows = [
            f"{j['id']:<14} {j['kind'].lower():<7} {j['state'].lower():<10} {j['step']:>6}/{j['total_steps']:<6} "
            f"{j['name']}" + (f"  {j['error']}" if j["error"] else "")
            for j in p["jobs"]
        ]
        return "\n".join(rows) or "no jobs"

    emit(args, to_dict(reply), human)
    return 0


def watch(args: argparse.Namespace) -> int:
    return _follow(args, args.job, args.after)


def cancel(args: argparse.Namespace) -> int:
    job = rpc_call(
        args, lambda: _stub(args).CancelJob(model_pb2.CancelJobRequest(job_id=args.job), timeout=args.timeout)
    )
    emit(args, to_dict(job), lambda p: f"{p['id']}: cancelling")
    return 0


def export(args: argparse.Namespace) -> int:
    request = model_pb2.ExportRequest(name=args.name, detach=True)
    if args.source.split("-", 1)[0].isdigit() and "/" not in args.source:
        request.job_id = args.source
    else:
        request.run_dir = str(Path(args.source).resolve())
    reply = rpc_call(args, lambda: _stub(args).Export(request, timeout=args.timeout))
    if args.detach:
        emit(args, to_dict(reply.job), lambda p: f"{p['id']}: {p['state'].lower()}")
        return 0
    return _follow(args, reply.job.id, 0)


def _follow(args: argparse.Namespace, job_id: str, after: int) -> int:
    """Stream a job's events (a progress bar, or JSON lines with --json) until it ends; exit 1 if
    it did not succeed."""
    from tqdm import tqdm

    bar: Any = None
    seen, last, gone_since = after, None, 0.0
    show: Callable[[model_pb2.JobEvent], None]
    if args.json:
        show = lambda event: print(json.dumps(to_dict(event)), flush=True)  # noqa: E731
    else:

        def show(event: model_pb2.JobEvent) -> None:
            nonlocal bar
            job = event.job
            if bar is None and job.total_steps:
                bar = tqdm(total=job.total_steps, desc=job.id, unit="step", file=sys.stderr)
            if bar is not None:
                bar.n = job.step
                bar.set_postfix_str(
                    f"loss {job.loss:.4f} lr {job.lr:.2g} {job.items_per_second:.0f} items/s", refresh=True
                )
            if not event.message.startswith("step "):
                (bar.write if bar is not None else print)(f"{job.id} #{event.sequence}: {event.message}")

    while True:
        try:
            for event in _stub(args).WatchJob(model_pb2.WatchJobRequest(job_id=job_id, after_sequence=seen)):
                seen, last, gone_since = event.sequence, event.job, 0.0
                show(event)
            break
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise SystemExit(f"error: {err.code().name}: {err.details()}") from None
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > _RETRY_SECONDS:
                raise SystemExit(f"error: the gateway has been unreachable for {_RETRY_SECONDS:g} s") from None
            time.sleep(1.0)  # the gateway restarts: re-attach after the last event seen
    if bar is not None:
        bar.close()
    if last is None:
        return 0
    if not args.json:
        outcome = f"{last.id}: {model_pb2.JobState.Name(last.state).lower()}"
        if last.model.name:
            outcome += f", published {last.model.name} v{last.model.version}"
        if last.metrics:
            outcome += ", " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(last.metrics.items()) if "." not in k)
        print(outcome + (f": {last.error}" if last.error else ""))
    return 0 if last.state == model_pb2.SUCCEEDED else 1


def activate(args: argparse.Namespace) -> int:
    request = model_pb2.ActivateRequest(
        modality=args.modality,
        model=args.model,
        version=args.version,
        missing_media=_POLICIES[args.missing_media],
        detach=args.watch,
    )
    # Without --watch: wait for the whole activation (re-embedding a large gallery takes a while).
    reply = rpc_call(args, lambda: _stub(args).Activate(request, timeout=None if not args.watch else args.timeout))
    if args.watch:
        return _follow(args, reply.job.id, 0)
    _print_activation(args, reply)
    return 0


def rollback(args: argparse.Namespace) -> int:
    request = model_pb2.RollbackRequest(modality=args.modality)
    _print_activation(args, rpc_call(args, lambda: _stub(args).Rollback(request, timeout=None)))
    return 0


def purge(args: argparse.Namespace) -> int:
    reply = rpc_call(
        args, lambda: _stub(args).Purge(model_pb2.PurgeRequest(modality=args.modality), timeout=args.timeout)
    )
    emit(args, to_dict(reply), lambda p: f"purged {p['purged']['name']} v{p['purged']['version']}")
    return 0


def _print_activation(args: argparse.Namespace, reply: model_pb2.ActivationResponse) -> None:
    def human(p: dict[str, Any]) -> str:
        r = p["report"]
        lines = [
            f"{p['job']['id']}: {r['to_model']['name']} v{r['to_model']['version']} active for {r['modality']} "
            f"(was {r['from_model']['name']} v{r['from_model']['version']}): {r['identities']} identities, "
            f"{r['reembedded']} re-embedded, {r['changes_replayed']} changes replayed, {r['seconds']:.1f} s"
        ]
        for label in ("dropped", "kept_on_old"):
            if r[label]:
                lines.append(f"  {label.replace('_', ' ')}: {', '.join(r[label])}")
        if r["report_path"]:
            lines.append(f"  report: {r['report_path']}")
        return "\n".join(lines)

    emit(args, to_dict(reply), human)
