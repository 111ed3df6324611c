"""Issue 11's loop through a `toitsu serve` subprocess and gRPC alone: enroll speakers with stored
media → StartTraining (a tiny speaker recipe) → WatchJob to the end → Export → Activate (32-d
over the default CAM++ 192-d gallery). The scores then come from the new version and the report is there;
Rollback brings back exactly the scores from before the activation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import pytest

from protos.v1 import common_pb2, model_pb2, model_pb2_grpc, speaker_pb2, speaker_pb2_grpc
from tests.conftest import SPEAKER_DIM, SPEAKER_MODEL
from tests.integration.test_model_jobs_restart import free_port, serve
from tests.serving.services.test_model_service import tiny_recipe

pytestmark = pytest.mark.integration
SPEAKERS = range(4)


def scores(stub: speaker_pb2_grpc.SpeakerServiceStub, voices) -> dict[tuple[int, int], tuple[float, str, int]]:
    """(enrolled, probe) → (score, model, version) for every pair."""
    out = {}
    for enrolled in SPEAKERS:
        for probe in SPEAKERS:
            request = speaker_pb2.VerifySpeakerRequest(
                speaker_id=f"s{enrolled}", audio=common_pb2.Audio(encoded=voices.clip(probe, 3))
            )
            reply = stub.Verify(request, timeout=60)
            out[enrolled, probe] = (reply.decision.score, reply.model.name, reply.model.version)
    return out


def test_train_export_activate_and_roll_back_through_the_gateway(models_dir, voices, tmp_path):
    models, var, log = tmp_path / "models", tmp_path / "var", tmp_path / "server.log"
    for name in (SPEAKER_MODEL, "silero-vad"):
        shutil.copytree(models_dir / name, models / name)
    port = free_port()
    proc = serve(models, var, log, port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            speakers, lifecycle = speaker_pb2_grpc.SpeakerServiceStub(channel), model_pb2_grpc.ModelServiceStub(channel)
            for s in SPEAKERS:
                clips = [common_pb2.Audio(encoded=voices.clip(s, k)) for k in (0, 1)]
                speakers.Enroll(
                    speaker_pb2.EnrollSpeakerRequest(speaker_id=f"s{s}", audio=clips, store_media=True), timeout=60
                )
            before = scores(speakers, voices)

            recipe = tiny_recipe(tmp_path / "corpus", steps=6)
            job = lifecycle.StartTraining(model_pb2.StartTrainingRequest(recipe_yaml=recipe), timeout=120)
            events = list(lifecycle.WatchJob(model_pb2.WatchJobRequest(job_id=job.id), timeout=600))
            assert events[-1].job.state == model_pb2.SUCCEEDED, events[-1].job.error
            assert [e.job.step for e in events if e.message.startswith("step ")] == [1, 2, 3, 4, 5, 6]

            exported = lifecycle.Export(model_pb2.ExportRequest(job_id=job.id), timeout=900)
            new = exported.published.model
            assert (new.name, new.version, exported.published.embedding_dim) == ("tiny-ecapa", 1, 32)

            activated = lifecycle.Activate(
                model_pb2.ActivateRequest(modality="speaker", model=new.name, version=new.version), timeout=900
            )
            report = activated.report
            assert (report.from_model.name, report.to_model.name) == (SPEAKER_MODEL, "tiny-ecapa")
            assert report.reembedded == len(SPEAKERS) and report.samples == 2 * len(SPEAKERS)
            comparison = json.loads(report.report_json)
            assert comparison["old"]["dim"] == SPEAKER_DIM and comparison["new"]["dim"] == 32
            assert Path(report.report_path).is_file() and Path(comparison["plot"]).stat().st_size > 1000
            after = scores(speakers, voices)
            assert {(m, v) for _, m, v in after.values()} == {("tiny-ecapa", 1)}  # every reply names it
            assert all(abs(after[k][0] - before[k][0]) > 1e-6 for k in before)  # and the scores are its own

            back = lifecycle.Rollback(model_pb2.RollbackRequest(modality="speaker"), timeout=300)
            assert back.report.to_model.name == SPEAKER_MODEL
            assert scores(speakers, voices) == before  # exactly the scores from before the activation
            jobs = lifecycle.ListJobs(model_pb2.ListJobsRequest(), timeout=10).jobs
            assert [model_pb2.JobKind.Name(j.kind) for j in jobs] == ["TRAIN", "EXPORT", "ACTIVATE", "ROLLBACK"]
    finally:
        proc.terminate()
        proc.wait(30)
