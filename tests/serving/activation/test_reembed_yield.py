"""The re-embed gives way to live traffic only: the gateway counts data-plane RPCs (not
ModelService, health or reflection), and a chunk that no live request overlapped is followed by no
pause, so an idle gateway re-embeds at full speed (bench/bench_activation.py measures both)."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.v1 import model_pb2, model_pb2_grpc, speaker_pb2, speaker_pb2_grpc
from serving.metrics import LiveTraffic
from tests.serving.activation.conftest import PROJECTED, start_gateway
from tests.serving.activation.test_speaker_activation import SPEAKERS, _enroll


def test_live_traffic_counts_requests_started_and_in_flight():
    live = LiveTraffic()
    mark = live.mark()
    assert not live.since(mark) and live.in_flight == 0
    entered, leave = threading.Event(), threading.Event()

    def request() -> None:
        with live.serving():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=request)
    thread.start()
    assert entered.wait(10)
    assert live.in_flight == 1 and live.since(mark)
    during = live.mark()
    assert live.since(during)  # one is still in flight
    leave.set()
    thread.join()
    after = live.mark()
    assert live.in_flight == 0 and live.since(during) is False and not live.since(after)
    with pytest.raises(RuntimeError), live.serving():
        raise RuntimeError("a failing request is counted out too")
    assert live.in_flight == 0 and live.since(after)


@pytest.fixture
def gateway(model_repo, tmp_path):
    gw = start_gateway(model_repo, tmp_path / "var", "speaker")
    yield gw
    gw.stop(grace=0)


def test_data_plane_rpcs_are_live_traffic_and_the_control_plane_is_not(gateway):
    live = gateway.metrics.live
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        models, speakers = model_pb2_grpc.ModelServiceStub(channel), speaker_pb2_grpc.SpeakerServiceStub(channel)
        mark = live.mark()
        models.ListModels(model_pb2.ListModelsRequest(), timeout=30)
        models.ListJobs(model_pb2.ListJobsRequest(), timeout=30)
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert not live.since(mark)
        speakers.List(speaker_pb2.ListSpeakersRequest(), timeout=30)
        assert live.since(mark) and live.in_flight == 0
        with pytest.raises(grpc.RpcError):  # an error reply is counted out as well
            speakers.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id="nobody"), timeout=30)
        assert live.in_flight == 0


def test_the_reembed_pauses_only_after_chunks_that_live_traffic_overlapped(gateway, voices):
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
        for name, i in SPEAKERS.items():
            _enroll(stub, voices, name, i)

    idle = gateway.activator.activate("speaker", "resemblyzer-ge2e", 2)
    assert idle.reembedded == len(SPEAKERS) and idle.yielded_seconds == 0.0

    with gateway.metrics.live.serving():  # a request in flight for the whole re-embed
        busy = gateway.activator.activate("speaker", PROJECTED, 1)
    assert busy.reembedded == len(SPEAKERS) and busy.yielded_seconds > 0.0
    assert busy.to_dict()["yielded_seconds"] == busy.yielded_seconds
