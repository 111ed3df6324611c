"""ModelService's messages: a model card and a job record as the protos carry them."""

from __future__ import annotations

from pathlib import Path

from contracts.card import AnyCard
from contracts.card_sections import ImportProvenance, TrainingProvenance
from protos.v1 import model_pb2
from serving.jobs.store import JobRecord

KINDS = {
    "train": model_pb2.TRAIN,
    "export": model_pb2.EXPORT,
    "activate": model_pb2.ACTIVATE,
    "rollback": model_pb2.ROLLBACK,
}
STATES = {
    "queued": model_pb2.QUEUED,
    "running": model_pb2.RUNNING,
    "succeeded": model_pb2.SUCCEEDED,
    "failed": model_pb2.FAILED,
    "cancelled": model_pb2.CANCELLED,
}


def card_summary(card: AnyCard) -> model_pb2.ModelVersionInfo:
    """A card, in short: what ListModels and Export report."""
    prov = card.provenance
    if isinstance(prov, TrainingProvenance):
        origin = f"trained: {prov.run} at step {prov.step}" + (f" ({prov.method})" if prov.method else "")
    elif isinstance(prov, ImportProvenance):
        origin = f"imported from {prov.package} {prov.package_version} ({prov.source_file})"
    else:
        origin = ""
    info = model_pb2.ModelVersionInfo(
        model={"name": card.name, "version": card.version},
        modality=card.modality,
        embedding_dim=card.embedding_dim or 0,
        provenance=origin,
        license=card.license,
        description=card.description,
    )
    for check in card.parity.checks if card.parity else ():
        info.parity.add(
            check=check.check, max_abs_diff=check.max_abs_diff, min_cosine=check.min_cosine, cases=check.cases
        )
    calibration = card.calibration_section
    if calibration is not None:
        info.calibrated, info.eer, info.dev_trials = True, calibration.eer, calibration.dev_trials
        for t in calibration.thresholds:
            info.thresholds.add(far=t.far, threshold=t.threshold, frr=t.frr)
    robustness = getattr(card, "robustness", None)  # speaker cards exported with --robustness
    if robustness is not None:
        section = info.robustness
        section.attack, section.threshold, section.far = robustness.attack, robustness.threshold, robustness.far
        section.kappa, section.dev_trials, section.built = robustness.kappa, robustness.dev_trials, robustness.built
        for p in robustness.points:
            point = section.points.add(
                eps=p.eps, budget=p.budget, trials=p.trials, successes=p.successes, success_rate=p.success_rate
            )
            if p.median_snr_db is not None:
                point.median_snr_db = p.median_snr_db
    return info


def job_message(job: JobRecord, queue_position: int = 0) -> model_pb2.Job:
    message = model_pb2.Job(
        id=job.id,
        kind=KINDS[job.kind],
        state=STATES[job.state],
        name=job.name,
        recipe_kind=job.recipe_kind,
        run_dir=job.run_dir,
        step=job.step,
        total_steps=job.total_steps,
        loss=job.loss,
        lr=job.lr,
        items_per_second=job.items_per_second,
        eta_seconds=job.eta_seconds,
        metrics=job.metrics,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        queue_position=queue_position,
        source_job=job.source_job,
        log_path=str(Path(job.run_dir).parent / "log.txt") if job.kind == "train" else "",
    )
    if job.model_name:
        message.model.name, message.model.version = job.model_name, job.model_version
    return message
