"""ModelService's Activate, Rollback and Purge: the gateway's :class:`~serving.activation.Activator`
run as in-process jobs of the same job store, so WatchJob follows a re-embed like a training run.

An activation job is created ``running`` (it needs no device slot: the work is the gateway's
own, at low priority), its progress events carry the re-embed's done / total as step / total
steps, and its report is ``var/jobs/<id>/report.json`` (the side-by-side comparison the activator
writes beside the new gallery is linked from it). A job that was running when the gateway died
is settled at the next start from the generations' ``ACTIVE`` file: succeeded when it names the
job's target version (the swap was reached), failed otherwise (the shadow was discarded).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from contracts.atomic import write_json_atomic
from protos.v1 import model_pb2
from serving.activation import ActivationProgress, ActivationReport, Policy
from serving.config import Config
from serving.errors import ToitsuError
from serving.gallery import generations as gens
from serving.jobs.store import JobRecord, JobStore, flatten_numbers
from serving.loader import MODALITIES, gallery_root

log = logging.getLogger("toitsu.activation.jobs")

POLICIES: dict[int, Policy] = {model_pb2.REFUSE: "refuse", model_pb2.DROP: "drop", model_pb2.KEEP_OLD: "keep-old"}
IN_PROCESS = frozenset({"activate", "rollback"})
Progress = Callable[[ActivationProgress], None]
Run = Callable[[Progress, Callable[[], bool]], ActivationReport]


def run_job(store: JobStore, kind: str, run: Run, cancelled: set[str], **fields: Any) -> JobRecord:
    """Create a running ``kind`` job and run ``run(progress, cancelled)`` on its own thread."""
    job = store.create(kind, state="running", started_at=time.time(), attempts=1, **fields)

    def progress(p: ActivationProgress) -> None:
        message = f"{p.phase}: {p.message}" if p.message else p.phase
        if p.total:
            message += f" ({p.done}/{p.total})"
        store.update(job.id, message, step=p.done, total_steps=p.total)

    def work() -> None:
        try:
            report = run(progress, lambda: job.id in cancelled)
        except ToitsuError as exc:
            state = "cancelled" if exc.code.name == "CANCELLED" else "failed"
            store.update(
                job.id,
                f"{state}: {exc.message}",
                state=state,
                error=exc.message,
                error_code=exc.code.name,
                finished_at=time.time(),
            )
            return
        except Exception as exc:  # a bug: reported on the job, logged with its traceback
            log.exception("%s job %s", kind, job.id)
            store.update(
                job.id,
                f"failed: {exc}",
                state="failed",
                error=f"internal error: {exc}",
                error_code="INTERNAL",
                finished_at=time.time(),
            )
            return
        data = report.to_dict()
        write_json_atomic(store.folder(job.id) / "report.json", data)
        store.update(
            job.id,
            f"{report.to_model} v{report.to_version} active",
            state="succeeded",
            model_name=report.to_model,
            model_version=report.to_version,
            metrics=_numbers(data),
            finished_at=time.time(),
        )

    threading.Thread(target=work, name=f"{kind}-{job.id}", daemon=True).start()
    return job


def settle(config: Config, job: JobRecord) -> tuple[str, str]:
    """(state, message) of an in-process job found ``running`` at start (the gateway died in it)."""
    state = gens.read_state(gallery_root(config, job.modality)) if job.modality in MODALITIES else None
    active = (state.active.model, state.active.version) if state is not None else None
    if job.kind == "activate" and active == (job.model_name, job.model_version):
        return "succeeded", f"the gateway restarted after the swap: {job.model_name} v{job.model_version} is active"
    where = f"{active[0]} v{active[1]}" if active else "the configured version"
    return "failed", f"interrupted by a gateway restart before its swap; {where} is still active"


def report_message(folder_report: dict[str, Any] | None) -> model_pb2.ActivationReport | None:
    """The reply's report, from the job's ``report.json``."""
    if not folder_report:
        return None
    r = folder_report
    message = model_pb2.ActivationReport(
        modality=str(r["modality"]),
        identities=int(r["identities"]),
        reembedded=int(r["reembedded"]),
        samples=int(r["samples"]),
        changes_replayed=int(r["changes_replayed"]),
        dropped=list(r.get("dropped", [])),
        kept_on_old=list(r.get("kept_on_old", [])),
        without_media=dict(r.get("without_media", {})),
        seconds=float(r.get("seconds", 0.0)),
        writes_paused_seconds=float(r.get("writes_paused_seconds", 0.0)),
        report_json=json.dumps(r.get("comparison", {})),
        report_path=str(r["comparison"].get("json", "")) if isinstance(r.get("comparison"), dict) else "",
    )
    message.from_model.name, message.from_model.version = str(r["from_model"]), int(r["from_version"])
    message.to_model.name, message.to_model.version = str(r["to_model"]), int(r["to_version"])
    return message


def _numbers(report: dict[str, Any]) -> dict[str, float]:
    """The report's counts and comparison as job metrics (dotted keys), for ListJobs and the CLI."""
    return flatten_numbers(
        {k: v for k, v in report.items() if k in ("identities", "reembedded", "samples", "comparison")}
    )
