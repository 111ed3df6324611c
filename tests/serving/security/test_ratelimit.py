"""Per-subject rate limits: RESOURCE_EXHAUSTED beyond the burst, before any decoding or model work."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest

from protos.v1 import speaker_pb2, speaker_pb2_grpc
from serving.errors import Overloaded
from serving.security.ratelimit import Limit, RateLimiter
from serving.server import Gateway
from tests.serving.security.conftest import _config, auth
from tests.serving.security.test_auth import _work
from tests.serving.services.conftest import audio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate():
    clock = Clock()
    limiter = RateLimiter(Limit(0, 0), clock)
    limit = Limit(rate=2.0, burst=3.0)
    for _ in range(3):
        limiter.take("a", limit)
    with pytest.raises(Overloaded, match=r"retry in 0\.50 s"):  # empty: one call takes 1/2 s to come back
        limiter.take("a", limit)
    limiter.take("b", limit)  # another subject has its own bucket
    clock.now += 0.5
    limiter.take("a", limit)
    with pytest.raises(Overloaded):
        limiter.take("a", limit)
    clock.now += 100  # refills up to the burst, never beyond
    for _ in range(3):
        limiter.take("a", limit)
    with pytest.raises(Overloaded):
        limiter.take("a", limit)
    for _ in range(1000):
        limiter.take("a", Limit(0, 0))  # rate 0: no limit


def test_a_tokens_own_limit_overrides_the_default():
    default = Limit(10, 20)
    assert Limit.of(None, None, default) == default
    assert Limit.of(1, None, default) == Limit(1, 1)  # its own rate, a one-second burst (at least 1)
    assert Limit.of(None, 5, default) == Limit(10, 5)
    assert RateLimiter.configured(4, 0).default == Limit(4, 4) and RateLimiter.configured(0, 0).default.rate == 0


def _flood(call, n: int) -> list[grpc.StatusCode]:
    codes: list[grpc.StatusCode] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        try:
            call()
            code = grpc.StatusCode.OK
        except grpc.RpcError as err:
            code = err.code()
        with lock:
            codes.append(code)

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))
    return codes


def test_a_flood_beyond_the_burst_is_resource_exhausted_and_another_token_is_unaffected(
    secured, channel, tokens, voices
):
    store = tokens["store"]
    # 5 calls of burst, then one per 1000 s: the flood cannot be refilled while it runs.
    flooder, _ = store.create("flooder", "verify", rate=0.001, burst=5)
    bystander, _ = store.create("bystander", "verify", rate=0.001, burst=5)
    stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
    embed = speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(0, 0)))
    codes = _flood(lambda: stub.Embed(embed, metadata=auth(flooder), timeout=60), 40)
    assert codes.count(grpc.StatusCode.OK) == 5 and codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 35, codes
    assert _work(secured)[0] == 5  # the 35 refused never reached a servicer (nor decoded their audio)
    with pytest.raises(grpc.RpcError) as err:
        stub.Embed(embed, metadata=auth(flooder), timeout=60)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "flooder" in (err.value.details() or "")
    # Another subject's bucket is untouched, and a token without a limit (default: off) is never limited.
    assert _flood(lambda: stub.Embed(embed, metadata=auth(bystander), timeout=60), 5) == [grpc.StatusCode.OK] * 5
    assert set(_flood(lambda: stub.Embed(embed, metadata=auth(tokens["verify"]), timeout=60), 12)) == {
        grpc.StatusCode.OK
    }


def test_the_configured_default_limits_tokens_without_their_own(models_dir, tmp_path, tokens):
    config = _config(models_dir, tmp_path / "var", **{"auth.rate_per_second": "0.001", "auth.burst": "3"})
    gw = Gateway(config)
    gw.start(background_load=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            calls = [lambda: stub.List(speaker_pb2.ListSpeakersRequest(), metadata=auth(tokens["enroll"]), timeout=10)]
            codes = _flood(calls[0], 10)
            assert codes.count(grpc.StatusCode.OK) == 3 and codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 7
            # A token with its own, larger limit is held to that one instead.
            own, _ = tokens["store"].create("batch-job", "enroll", rate=0.001, burst=8)
            codes = _flood(lambda: stub.List(speaker_pb2.ListSpeakersRequest(), metadata=auth(own), timeout=10), 10)
            assert codes.count(grpc.StatusCode.OK) == 8
    finally:
        gw.stop(grace=0)
