"""``toitsu.v1.ModelService``: the model repository, training and export jobs.

Jobs are :class:`serving.jobs.supervisor.JobSupervisor`'s: subprocesses of the gateway, persisted
under ``var/jobs``. This servicer validates requests, turns records into messages and waits on
job events; it never imports torch (a recipe is checked by a ``toitsu train --check`` subprocess).
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import grpc

from contracts.card import CardError
from protos.v1 import model_pb2, model_pb2_grpc
from serving.activation import ActivationReport, Activator
from serving.config import Config
from serving.errors import FailedPrecondition, InvalidInput, NotFound, ToitsuError, Unavailable
from serving.jobs import commands
from serving.jobs.store import JobEvent, JobRecord
from serving.jobs.supervisor import JobSupervisor
from serving.loader import MODALITIES
from serving.models.repository import ModelRepository
from serving.services import model_activation as act
from serving.services.model_messages import card_summary, job_message


class ModelRuntime(Protocol):
    config: Config
    jobs: JobSupervisor
    activator: Activator

    def active_models(self) -> dict[str, tuple[str, int]]:
        """modality → (model name, version) of what each loaded modality serves."""
        ...


class JobFailed(ToitsuError):
    """A job the request waited for ended without its result (the reason is in the message)."""

    code = grpc.StatusCode.ABORTED


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, runtime: ModelRuntime) -> None:
        self._runtime = runtime

    @property
    def _jobs(self) -> JobSupervisor:
        return self._runtime.jobs

    def _job(self, job_id: str) -> JobRecord:
        job = self._jobs.store.get(job_id) if job_id else None
        if job is None:
            known = ", ".join(j.id for j in self._jobs.store.jobs()[-10:]) or "none"
            raise NotFound(f"no job {job_id!r} (latest: {known})")
        return job

    def _message(self, job: JobRecord) -> model_pb2.Job:
        message = job_message(job, self._jobs.queue_position(job))
        message.last_sequence = len(self._jobs.store.events_after(job.id, 0))
        return message

    # -- models ----------------------------------------------------------------------------------------
    def ListModels(
        self, request: model_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> model_pb2.ListModelsResponse:
        repo = ModelRepository(self._runtime.config.models_dir)
        reply = model_pb2.ListModelsResponse()
        for name in repo.names():
            for version in repo.versions(name):
                try:
                    reply.models.append(card_summary(repo.get(name, version).card))
                except (CardError, NotFound):
                    continue  # a version with a broken card is not servable: not listed
        for modality, (name, version) in sorted(self._runtime.active_models().items()):
            reply.active.add(modality=modality, model={"name": name, "version": version})
        return reply

    # -- jobs --------------------------------------------------------------------------------------------
    def StartTraining(self, request: model_pb2.StartTrainingRequest, context: grpc.ServicerContext) -> model_pb2.Job:
        cfg = self._runtime.config.jobs
        recipes, workdir = Path(cfg.recipes).resolve(), Path(cfg.workdir).resolve()
        if request.processes > 64:
            raise InvalidInput(f"processes={request.processes}: at most 64 per job")
        overrides = list(request.overrides)
        for item in overrides:
            if "=" not in item or not item.split("=", 1)[0].strip():
                raise InvalidInput(f"override {item!r} must look like section.key=value")
        source = request.WhichOneof("recipe")
        staging: Path | None = None
        if source == "recipe_name":
            recipe = commands.recipe_path(recipes, request.recipe_name)
            label = request.recipe_name
        elif source == "recipe_yaml":
            staging = self._jobs.store.root / f".staging-{uuid.uuid4().hex}"
            staging.mkdir()
            recipe = staging / "recipe.yaml"
            recipe.write_text(request.recipe_yaml)
            commands.link_recipe_folders(recipes, staging)
            label = "recipe"
        else:
            raise InvalidInput("name a recipe (recipe_name) or send one (recipe_yaml)")
        try:
            checked = commands.check_recipe(recipe, overrides, cwd=workdir, timeout=cfg.validate_timeout_seconds)

            def prepare(folder: Path) -> dict[str, str]:
                if staging is not None:
                    for entry in staging.iterdir():
                        entry.rename(folder / entry.name)
                return {"run_dir": str((folder / "run").resolve())}

            job = self._jobs.submit(
                "train",
                prepare,
                name=request.name or label,
                recipe_kind=checked.kind,
                recipe=str(recipe) if staging is None else "recipe.yaml",
                overrides=overrides,
                processes=max(1, request.processes),
                total_steps=checked.steps,
                export_name=checked.export_name,
            )
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        return self._message(job)

    def ListJobs(self, request: model_pb2.ListJobsRequest, context: grpc.ServicerContext) -> model_pb2.ListJobsResponse:
        return model_pb2.ListJobsResponse(jobs=[self._message(job) for job in self._jobs.store.jobs()])

    def GetJob(self, request: model_pb2.GetJobRequest, context: grpc.ServicerContext) -> model_pb2.Job:
        return self._message(self._job(request.job_id))

    def WatchJob(
        self, request: model_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[model_pb2.JobEvent]:
        job = self._job(request.job_id)
        if request.after_sequence < 0:
            raise InvalidInput(f"after_sequence must be >= 0, got {request.after_sequence}")
        for event in self._follow(job.id, request.after_sequence, context):
            yield self._event(event)

    def CancelJob(self, request: model_pb2.CancelJobRequest, context: grpc.ServicerContext) -> model_pb2.Job:
        job = self._job(request.job_id)
        if job.finished:
            raise FailedPrecondition(f"job {job.id} has already {job.state}")
        self._jobs.cancel(job.id)
        return self._message(job)

    def Export(self, request: model_pb2.ExportRequest, context: grpc.ServicerContext) -> model_pb2.ExportResponse:
        source = request.WhichOneof("source")
        if source == "job_id":
            train = self._job(request.job_id)
            if train.kind != "train":
                raise InvalidInput(f"job {train.id} is an {train.kind} job: export a training job or a run folder")
            if train.state != "succeeded":
                raise FailedPrecondition(
                    f"job {train.id} is {train.state}: a run can be exported once its job has succeeded"
                )
            run_dir, source_job, name = Path(train.run_dir), train.id, request.name or train.export_name
        elif source == "run_dir":
            run_dir, source_job, name = Path(request.run_dir).resolve(), "", request.name
            if not (run_dir / "recipe.yaml").is_file():
                raise NotFound(f"{run_dir} is not a training run folder (no recipe.yaml)")
        else:
            raise InvalidInput("name the training job (job_id) or the run folder (run_dir) to export")
        if not (run_dir / "run.json").is_file():
            raise FailedPrecondition(f"{run_dir} has not finished training (no run.json): export it when it has")
        job = self._jobs.submit(
            "export",
            None,
            name=f"export {source_job or run_dir.name}",
            run_dir=str(run_dir),
            export_name=name,
            source_job=source_job,
        )
        if request.detach:
            return model_pb2.ExportResponse(job=self._message(job))
        for _ in self._follow(job.id, 0, context):
            pass
        final = self._job(job.id)
        if final.state == "succeeded":
            card = ModelRepository(self._runtime.config.models_dir).get(final.model_name, final.model_version).card
            return model_pb2.ExportResponse(job=self._message(final), published=card_summary(card))
        if final.state != "failed" and not context.is_active():
            raise Unavailable(f"the export job {job.id} goes on; follow it with WatchJob")
        if final.error.startswith("parity check failed"):
            raise FailedPrecondition(f"export job {job.id}: {final.error}")
        raise JobFailed(f"export job {job.id} {final.state}: {final.error or 'cancelled'}")

    # -- activation ------------------------------------------------------------------------------------
    def Activate(
        self, request: model_pb2.ActivateRequest, context: grpc.ServicerContext
    ) -> model_pb2.ActivationResponse:
        name, policy = self._modality(request.modality), self._policy(request.missing_media)
        version = ModelRepository(self._runtime.config.models_dir).get(request.model, request.version or None).card
        if version.modality != name:
            raise InvalidInput(f"{version.name} v{version.version} is a {version.modality} model, not a {name} model")
        activator = self._runtime.activator

        def run(progress: act.Progress, cancelled: Callable[[], bool]) -> ActivationReport:
            return activator.activate(name, version.name, version.version, policy, progress, cancelled)

        job = act.run_job(
            self._jobs.store,
            "activate",
            run,
            self._jobs.cancel_requested,
            name=f"activate {name} {version.name} v{version.version}",
            modality=name,
            model_name=version.name,
            model_version=version.version,
        )
        return self._activation_reply(job, request.detach, context)

    def Rollback(
        self, request: model_pb2.RollbackRequest, context: grpc.ServicerContext
    ) -> model_pb2.ActivationResponse:
        name, policy = self._modality(request.modality), self._policy(request.missing_media)
        activator = self._runtime.activator

        def run(progress: act.Progress, cancelled: Callable[[], bool]) -> ActivationReport:
            return activator.rollback(name, policy, progress, cancelled)

        job = act.run_job(
            self._jobs.store, "rollback", run, self._jobs.cancel_requested, name=f"rollback {name}", modality=name
        )
        return self._activation_reply(job, False, context)

    def Purge(self, request: model_pb2.PurgeRequest, context: grpc.ServicerContext) -> model_pb2.PurgeResponse:
        purged = self._runtime.activator.purge(self._modality(request.modality))
        return model_pb2.PurgeResponse(purged={"name": purged.model, "version": purged.version})

    def _activation_reply(
        self, job: JobRecord, detach: bool, context: grpc.ServicerContext
    ) -> model_pb2.ActivationResponse:
        if detach:
            return model_pb2.ActivationResponse(job=self._message(job))
        for _ in self._follow(job.id, 0, context):
            pass
        final = self._job(job.id)
        if final.state == "succeeded":
            report = json.loads((self._jobs.store.folder(job.id) / "report.json").read_text())
            return model_pb2.ActivationResponse(job=self._message(final), report=act.report_message(report))
        if not final.finished:
            raise Unavailable(f"the {final.kind} job {job.id} goes on; follow it with WatchJob")
        error = ToitsuError(f"{final.kind} job {job.id} {final.state}: {final.error}")
        error.code = getattr(grpc.StatusCode, final.error_code or "ABORTED", grpc.StatusCode.ABORTED)
        raise error

    @staticmethod
    def _modality(name: str) -> str:
        if name not in MODALITIES:
            raise InvalidInput(f"unknown modality {name!r} (known: {', '.join(MODALITIES)})")
        return name

    @staticmethod
    def _policy(value: int) -> act.Policy:
        if value not in act.POLICIES:
            raise InvalidInput(f"unknown missing_media policy {value}")
        return act.POLICIES[value]

    # -- helpers ----------------------------------------------------------------------------------------
    def _follow(self, job_id: str, after: int, context: grpc.ServicerContext) -> Iterator[JobEvent]:
        stop = threading.Event()
        context.add_callback(stop.set)  # the client went away or its deadline passed
        yield from self._jobs.store.follow(job_id, after, stop)

    def _event(self, event: JobEvent) -> model_pb2.JobEvent:
        job = job_message(event.job)
        job.last_sequence = event.sequence
        return model_pb2.JobEvent(sequence=event.sequence, at=event.at, message=event.message, job=job)
