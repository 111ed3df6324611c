"""Activate, Rollback and Purge through ModelService (gRPC), as the CLI calls them: the
activation is a job WatchJob follows, its reply carries the report, bad requests get a clear
status and change nothing, and rollback restores the exact old scores."""

from __future__ import annotations

import json

import grpc
import pytest

from protos.v1 import model_pb2, model_pb2_grpc, speaker_pb2_grpc
from tests.serving.activation.conftest import PROJECTED, start_gateway
from tests.serving.activation.test_speaker_activation import SPEAKERS, _enroll, _scores, _verify


@pytest.fixture
def gateway(model_repo, tmp_path):
    gw = start_gateway(model_repo, tmp_path / "var", "speaker")
    yield gw
    gw.stop(grace=0)


@pytest.fixture
def channel(gateway):
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as ch:
        yield ch


def status(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_activate_watch_rollback_and_purge_over_grpc(gateway, channel, voices):
    models, speakers = model_pb2_grpc.ModelServiceStub(channel), speaker_pb2_grpc.SpeakerServiceStub(channel)
    for name, i in SPEAKERS.items():
        _enroll(speakers, voices, name, i)
    before = _scores(speakers, voices)

    request = model_pb2.ActivateRequest(modality="speaker", model=PROJECTED, version=1, detach=True)
    job = models.Activate(request, timeout=30).job
    assert job.kind == model_pb2.ACTIVATE
    events = list(models.WatchJob(model_pb2.WatchJobRequest(job_id=job.id), timeout=300))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].job.state == model_pb2.SUCCEEDED, events[-1].job.error
    progress = [e for e in events if e.message.startswith("re-embedding")]
    assert progress and progress[-1].job.step == progress[-1].job.total_steps == len(SPEAKERS)
    final = events[-1].job
    assert (final.model.name, final.model.version) == (PROJECTED, 1) and final.metrics["reembedded"] == len(SPEAKERS)

    listed = models.ListModels(model_pb2.ListModelsRequest(), timeout=10)
    assert [(a.model.name, a.model.version) for a in listed.active if a.modality == "speaker"] == [(PROJECTED, 1)]
    assert _verify(speakers, voices, "spk1", 1).model.name == PROJECTED

    back = models.Rollback(model_pb2.RollbackRequest(modality="speaker"), timeout=300)
    assert back.job.state == model_pb2.SUCCEEDED and back.report.to_model.name == "resemblyzer-ge2e"
    assert (back.report.from_model.name, back.report.identities) == (PROJECTED, len(SPEAKERS))
    assert _scores(speakers, voices) == before  # exactly: the previous gallery itself is back

    purged = models.Purge(model_pb2.PurgeRequest(modality="speaker"), timeout=30).purged
    assert (purged.name, purged.version) == (PROJECTED, 1)
    code, _ = status(lambda: models.Rollback(model_pb2.RollbackRequest(modality="speaker"), timeout=30))
    assert code == grpc.StatusCode.FAILED_PRECONDITION  # nothing left to roll back to


def test_a_waited_activation_replies_with_its_report(gateway, channel, voices):
    models, speakers = model_pb2_grpc.ModelServiceStub(channel), speaker_pb2_grpc.SpeakerServiceStub(channel)
    for name, i in SPEAKERS.items():
        _enroll(speakers, voices, name, i)
    reply = models.Activate(model_pb2.ActivateRequest(modality="speaker", model=PROJECTED, version=1), timeout=300)
    report = reply.report
    assert (report.from_model.name, report.to_model.name, report.reembedded) == ("resemblyzer-ge2e", PROJECTED, 4)
    comparison = json.loads(report.report_json)
    assert json.loads(open(report.report_path).read()) == comparison  # the file beside the new gallery
    assert comparison["new"]["dim"] == 192 and comparison["old"]["dim"] == 256
    assert comparison["new"]["gallery"]["genuine"]["count"] == 8


def test_bad_activation_requests_get_a_clear_status_and_change_nothing(gateway, channel, voices):
    models, speakers = model_pb2_grpc.ModelServiceStub(channel), speaker_pb2_grpc.SpeakerServiceStub(channel)
    _enroll(speakers, voices, "with-media", 0)
    _enroll(speakers, voices, "no-media", 1, store_media=False)
    before = _scores_of(speakers, voices)
    cases = {
        grpc.StatusCode.INVALID_ARGUMENT: [
            model_pb2.ActivateRequest(modality="voice", model=PROJECTED, version=1),
            model_pb2.ActivateRequest(modality="speaker", model="dlib-resnet-v1", version=1),  # a face model
            model_pb2.ActivateRequest(modality="speaker", model=PROJECTED, version=1, missing_media=7),
        ],
        grpc.StatusCode.NOT_FOUND: [
            model_pb2.ActivateRequest(modality="speaker", model="no-such-model", version=1),
            model_pb2.ActivateRequest(modality="speaker", model=PROJECTED, version=9),
        ],
        grpc.StatusCode.FAILED_PRECONDITION: [
            model_pb2.ActivateRequest(modality="speaker", model=PROJECTED, version=1),  # "no-media" has no media
            model_pb2.ActivateRequest(modality="speaker", model="resemblyzer-ge2e", version=1),  # already active
        ],
    }
    for expected, requests in cases.items():
        for request in requests:
            code, message = status(lambda: models.Activate(request, timeout=120))
            assert code == expected, (request, code, message)
    code, message = status(lambda: models.Activate(cases[grpc.StatusCode.FAILED_PRECONDITION][0], timeout=120))
    assert "no-media" in message and "with-media" not in message
    assert status(lambda: models.Rollback(model_pb2.RollbackRequest(modality="speaker"), timeout=30))[0] == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert status(lambda: models.Purge(model_pb2.PurgeRequest(modality="sound"), timeout=30))[0] in (
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAVAILABLE,
    )
    assert _scores_of(speakers, voices) == before
    assert _verify(speakers, voices, "with-media", 0).model.name == "resemblyzer-ge2e"
    listed = models.ListModels(model_pb2.ListModelsRequest(), timeout=10)
    assert [(a.model.name, a.model.version) for a in listed.active] == [("resemblyzer-ge2e", 1)]


def _scores_of(stub, voices) -> dict[str, float]:
    return {name: _verify(stub, voices, name, i).decision.score for name, i in (("with-media", 0), ("no-media", 1))}
