"""Bad input gets a clear status and message, and the server stays up (health SERVING after)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from protos.v1 import common_pb2, speaker_pb2
from tests.conftest import SPEAKER_DIM, SPEAKER_MODEL, wav_bytes
from tests.serving.services.conftest import MAX_MESSAGE_MB, audio

INVALID, NOT_FOUND, EXHAUSTED = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


def _pcm(samples: np.ndarray, rate: int = 16000, fmt=common_pb2.PCM_F32LE) -> common_pb2.Audio:
    dtype = "<f4" if fmt == common_pb2.PCM_F32LE else "<i2"
    return common_pb2.Audio(pcm=common_pb2.RawPcm(data=samples.astype(dtype).tobytes(), sample_rate=rate, format=fmt))


def _cases(voices):
    good = voices.clip(0, 0)
    speech = np.frombuffer(good[44:], "<i2").astype(np.float32) / 32768
    rng = np.random.default_rng(0)
    return {
        "empty body": (audio(b""), INVALID, "empty"),
        "no audio at all": (common_pb2.Audio(), INVALID, "exactly one"),
        "garbage bytes": (audio(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()), INVALID, "audio"),
        "truncated wav": (audio(good[: len(good) // 3]), INVALID, "truncated"),
        "nan pcm": (_pcm(np.where(np.arange(16000) == 5, np.nan, 0.1).astype(np.float32)), INVALID, "NaN"),
        "inf pcm": (_pcm(np.full(16000, np.inf, np.float32)), INVALID, "finite"),
        "zero-length pcm": (_pcm(np.zeros(0, np.float32)), INVALID, "empty"),
        "all silence": (audio(wav_bytes(np.zeros(48000, np.float32))), INVALID, "silent"),
        "too short": (audio(wav_bytes(speech[:8000])), INVALID, "speech"),
        "too long": (audio(wav_bytes(np.tile(speech, 1 + int(61 * 16000 / len(speech))))), INVALID, "60"),
        "unsupported rate": (_pcm(speech[:4000], rate=4000), INVALID, "8000"),
        "pcm without format": (
            common_pb2.Audio(pcm=common_pb2.RawPcm(data=b"\0\0" * 100, sample_rate=16000)),
            INVALID,
            "format",
        ),
    }


CASES = [
    "empty body",
    "no audio at all",
    "garbage bytes",
    "truncated wav",
    "nan pcm",
    "inf pcm",
    "zero-length pcm",
    "all silence",
    "too short",
    "too long",
    "unsupported rate",
    "pcm without format",
]


def _code(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


@pytest.mark.parametrize("case", CASES)
def test_bad_audio_is_invalid_argument_and_server_stays_up(case, stub, voices, health):
    clip, expected, words = _cases(voices)[case]
    code, details = _code(lambda: stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=clip), timeout=30))
    assert code == expected, details
    assert words.lower() in details.lower(), details
    assert health() == "SERVING" and health("toitsu.v1.SpeakerService") == "SERVING"


def test_failed_enrollment_leaves_nothing_behind(stub, voices, health):
    request = speaker_pb2.EnrollSpeakerRequest(speaker_id="alice", audio=[audio(voices.clip(0, 0)), audio(b"junk")])
    code, details = _code(lambda: stub.Enroll(request, timeout=30))
    assert code == INVALID and "junk" not in details
    assert stub.List(speaker_pb2.ListSpeakersRequest(), timeout=10).total == 0
    request = speaker_pb2.EnrollSpeakerRequest(speaker_id="alice", audio=[audio(voices.clip(0, 0))])
    assert stub.Enroll(request, timeout=30).created  # nothing half-written blocks a retry
    assert health() == "SERVING"


@pytest.mark.parametrize(
    "request_, expected, words",
    [
        (speaker_pb2.VerifySpeakerRequest(speaker_id="nobody"), NOT_FOUND, "nobody"),
        (speaker_pb2.DeleteSpeakerRequest(speaker_id="nobody"), NOT_FOUND, "nobody"),
        (speaker_pb2.EnrollSpeakerRequest(speaker_id="bad id!"), INVALID, "utterance"),
        (speaker_pb2.IdentifySpeakerRequest(), INVALID, "probe"),
        (speaker_pb2.IdentifySpeakerRequest(top_k=10_000), INVALID, "top_k"),
        (speaker_pb2.IdentifySpeakerRequest(target_far=0.05), INVALID, "not calibrated"),
        (speaker_pb2.ListSpeakersRequest(page_size=5000), INVALID, "page_size"),
    ],
)
def test_bad_requests(request_, expected, words, stub, health):
    method = {
        speaker_pb2.VerifySpeakerRequest: stub.Verify,
        speaker_pb2.DeleteSpeakerRequest: stub.Delete,
        speaker_pb2.EnrollSpeakerRequest: stub.Enroll,
        speaker_pb2.IdentifySpeakerRequest: stub.Identify,
        speaker_pb2.ListSpeakersRequest: stub.List,
    }[type(request_)]
    code, details = _code(lambda: method(request_, timeout=30))
    assert code == expected and words in details, details
    assert health() == "SERVING"


def test_bad_ids_and_embeddings(stub, voices, health):
    code, details = _code(
        lambda: stub.Enroll(
            speaker_pb2.EnrollSpeakerRequest(speaker_id="bad id!", audio=[audio(voices.clip(0, 0))]), timeout=30
        )
    )
    assert code == INVALID and "bad id!" in details
    stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id="bob", audio=[audio(voices.clip(1, 0))]), timeout=30)
    model = common_pb2.ModelRef(name=SPEAKER_MODEL, version=1)
    for values, words in (
        ([0.1] * 10, str(SPEAKER_DIM)),
        ([0.0] * SPEAKER_DIM, "zero"),
        ([float("nan")] * SPEAKER_DIM, "finite"),
    ):
        probe = common_pb2.Embedding(values=values, model=model)
        code, details = _code(
            lambda: stub.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id="bob", embedding=probe), timeout=30)
        )
        assert code == INVALID and words in details, details
    assert health() == "SERVING"


def test_oversize_message_is_resource_exhausted(stub, health):
    blob = audio(b"\0" * (MAX_MESSAGE_MB * 1024 * 1024 + 1))
    code, _ = _code(lambda: stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=blob), timeout=30))
    assert code == EXHAUSTED
    assert health() == "SERVING"
