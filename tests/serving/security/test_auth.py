"""Tokens on a real in-process gateway: refusals come first, before any decoding or model work."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos.v1 import model_pb2, model_pb2_grpc, speaker_pb2, speaker_pb2_grpc
from serving.config import ConfigError
from serving.security.tokens import TokenStore
from serving.server import Gateway, is_loopback
from tests.conftest import SPEAKER_DIM
from tests.serving.security.conftest import _config, auth
from tests.serving.services.conftest import audio


def _work(gw: Gateway) -> tuple[float, float]:
    """(RPCs the servicers' interceptor saw, inference batches run): what a refusal must not move."""
    rpcs = batches = 0.0
    for metric in gw.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "toitsu_requests_total":
                rpcs += sample.value
            if sample.name == "toitsu_batch_size_count":
                batches += sample.value
    return rpcs, batches


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_missing_bad_and_wrong_role_tokens_are_refused_and_the_right_ones_pass(secured, channel, tokens, voices):
    stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
    models = model_pb2_grpc.ModelServiceStub(channel)
    embed = speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(0, 0)))
    enroll = speaker_pb2.EnrollSpeakerRequest(speaker_id="spk0", audio=[audio(voices.clip(0, 1))])
    assert _code(lambda: stub.Embed(embed, timeout=30)) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: stub.Embed(embed, metadata=auth("nope"), timeout=30)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        _code(lambda: stub.Embed(embed, metadata=[("authorization", tokens["verify"])], timeout=30))
        == grpc.StatusCode.UNAUTHENTICATED
    )  # no "Bearer "
    assert _code(lambda: stub.Enroll(enroll, metadata=auth(tokens["verify"]), timeout=30)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    list_models = model_pb2.ListModelsRequest()
    assert _code(lambda: models.ListModels(list_models, metadata=auth(tokens["enroll"]), timeout=30)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert _work(secured) == (0, 0)  # none of that reached a servicer
    assert len(stub.Embed(embed, metadata=auth(tokens["verify"]), timeout=30).embedding.values) == SPEAKER_DIM
    assert stub.Enroll(enroll, metadata=auth(tokens["enroll"]), timeout=60).created
    assert stub.Enroll(
        speaker_pb2.EnrollSpeakerRequest(speaker_id="spk1", audio=[audio(voices.clip(1, 1))]),
        metadata=auth(tokens["admin"]),
        timeout=60,
    ).created
    assert models.ListModels(list_models, metadata=auth(tokens["admin"]), timeout=30).models
    # A server stream (WatchJob) checks its token too.
    watch = models.WatchJob(model_pb2.WatchJobRequest(job_id="nope"), metadata=auth(tokens["verify"]), timeout=30)
    assert _code(lambda: list(watch)) == grpc.StatusCode.PERMISSION_DENIED
    rpcs, batches = _work(secured)
    assert rpcs == 4 and batches >= 3


def test_revocation_takes_effect_without_a_restart(secured, channel, tokens, voices):
    stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
    embed = speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(0, 0)))
    assert stub.Embed(embed, metadata=auth(tokens["verify"]), timeout=30).embedding.values
    store: TokenStore = tokens["store"]
    (record,) = [r for r in store.list() if r.role == "verify"]
    store.revoke(record.id)
    assert _code(lambda: stub.Embed(embed, metadata=auth(tokens["verify"]), timeout=30)) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


def test_health_and_reflection_stay_open(secured, channel):
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_flood_of_unauthenticated_16mb_requests_costs_no_model_time(secured, channel, tokens):
    stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
    big = speaker_pb2.EmbedSpeakerRequest(audio=audio(b"\0" * (16 << 20)))
    enroll = speaker_pb2.EnrollSpeakerRequest(speaker_id="x", audio=[audio(b"\0" * (16 << 20))])
    calls = [
        lambda: stub.Embed(big, timeout=30),
        lambda: stub.Embed(big, metadata=auth("tt_0123456789abcdef_" + "A" * 43), timeout=30),
        lambda: stub.Embed(big, metadata=auth("x" * 4000), timeout=30),
        lambda: stub.Enroll(enroll, metadata=auth(tokens["verify"]), timeout=30),
    ]
    codes: list[grpc.StatusCode] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        code = _code(calls[i % len(calls)])
        with lock:
            codes.append(code)

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(48)))
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) == 36 and codes.count(grpc.StatusCode.PERMISSION_DENIED) == 12
    assert _work(secured) == (0, 0)  # no servicer entered, no inference batch run
    # The same 16 MB with a valid token does reach the servicer (so the counters above can move).
    assert _code(lambda: stub.Embed(big, metadata=auth(tokens["verify"]), timeout=30)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert _work(secured)[0] == 1


def test_open_without_tokens_on_loopback_refused_on_a_remote_address(models_dir, tmp_path, caplog):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("[::]") and not is_loopback("10.1.2.3")
    with pytest.raises(ConfigError, match="allow_insecure_remote"):
        Gateway(_config(models_dir, tmp_path / "var", **{"server.host": "0.0.0.0"})).start(background_load=False)
    gw = Gateway(
        _config(models_dir, tmp_path / "var", **{"server.host": "0.0.0.0", "server.allow_insecure_remote": "1"})
    )
    try:
        gw.start(background_load=False)
        assert "serving OPEN" in caplog.text
    finally:
        gw.stop(grace=0)


def test_which_services_are_open_is_configurable(models_dir, tmp_path, tokens):
    config = _config(models_dir, tmp_path / "var", **{"auth.open_services": "grpc.reflection.v1alpha.ServerReflection"})
    gw = Gateway(config)
    gw.start(background_load=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            check = health_pb2_grpc.HealthStub(ch).Check
            assert _code(lambda: check(health_pb2.HealthCheckRequest(), timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
            assert check(health_pb2.HealthCheckRequest(), metadata=auth(tokens["verify"]), timeout=5)
            reflect = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo
            (reply,) = reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
            assert "toitsu.v1.SpeakerService" in {s.name for s in reply.list_services_response.service}
    finally:
        gw.stop(grace=0)
