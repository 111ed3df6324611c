"""AudioPipeline / decode_request: each limit gives InvalidInput with its numbers; good speech
passes with a plausible amount of speech left."""

from __future__ import annotations

import numpy as np
import pytest

from serving.audio.decode import DecodedAudio
from serving.audio.pipeline import AudioLimits, AudioPipeline, decode_request
from serving.audio.resample import resample
from serving.audio.vad import SileroVad
from serving.errors import InvalidInput
from tests.serving.audio.helpers import encode, pad

SR = 16_000


def decoded(x: np.ndarray, sr: int = SR) -> DecodedAudio:
    x = np.ascontiguousarray(x, np.float32)
    return DecodedAudio(x, sr, 1, "test", len(x) / sr)


def rejects(call, *needles: str) -> str:
    with pytest.raises(InvalidInput) as info:
        call()
    for needle in needles:
        assert needle in info.value.message, info.value.message
    return info.value.message


@pytest.fixture(scope="module")
def pipeline(vad: SileroVad) -> AudioPipeline:
    return AudioPipeline(vad, SR, AudioLimits())


def test_good_clip_passes(pipeline: AudioPipeline, speech_16k: np.ndarray) -> None:
    # 44.1 kHz stereo WAV with 2 s of low noise each side, through the request helper.
    x = resample(pad(speech_16k, 2.0, noise=0.001), SR, 44_100)
    wav = encode(np.stack([x, x], axis=1), 44_100)
    out = pipeline.prepare_request(encoded=wav)
    speech = len(speech_16k) / SR
    assert out.sample_rate == SR and out.samples.dtype == np.float32
    assert out.input_seconds == pytest.approx(speech + 4.0, abs=0.01)
    assert 0.6 * speech < out.speech_seconds <= speech + 0.2
    assert out.speech_seconds == pytest.approx(len(out.samples) / SR)
    assert sum(e - s for s, e in out.segments) == len(out.samples)
    assert out.segments[0][0] > 1.5 * SR  # the leading padding is gone


def test_other_target_rate_maps_segments(vad: SileroVad, speech_16k: np.ndarray) -> None:
    x = pad(speech_16k, 2.0)
    at16 = AudioPipeline(vad, SR).prepare(decoded(x))
    at8 = AudioPipeline(vad, 8_000).prepare(decoded(x))
    assert at8.sample_rate == 8_000
    # The VAD then sees 8 kHz-band audio, so frames near a threshold may flip: within 3 frames.
    assert at8.speech_seconds == pytest.approx(at16.speech_seconds, abs=0.1)
    assert at8.segments[0][0] == pytest.approx(at16.segments[0][0] / 2, abs=3 * 256)
    assert sum(e - s for s, e in at8.segments) == len(at8.samples)


def test_without_vad_keeps_everything(speech_16k: np.ndarray) -> None:
    out = AudioPipeline(None, SR).prepare(decoded(pad(speech_16k, 1.0)))
    assert out.speech_seconds == pytest.approx(out.input_seconds)
    assert out.segments == ((0, len(out.samples)),)


def test_too_long(pipeline: AudioPipeline) -> None:
    x = (0.1 * np.random.default_rng(0).standard_normal(61 * SR)).astype(np.float32)
    rejects(lambda: pipeline.prepare(decoded(x)), "61.00 s", "limit is 60.00 s")
    # The request path refuses it from the header, before decoding.
    rejects(lambda: pipeline.prepare_request(encoded=encode(x, SR)), "61.00 s", "60.00 s")


def test_too_short(pipeline: AudioPipeline, speech_16k: np.ndarray) -> None:
    rejects(lambda: pipeline.prepare(decoded(speech_16k[: SR // 2])), "0.50 s", "at least 1.00 s")


def test_silent(pipeline: AudioPipeline) -> None:
    rejects(lambda: pipeline.prepare(decoded(np.zeros(3 * SR))), "silent", "3.00 s")
    rejects(lambda: pipeline.prepare(decoded(np.full(3 * SR, 0.3))), "silent")  # pure DC
    rejects(lambda: pipeline.prepare(decoded(np.full(3 * SR, 3e-5))), "silent")


def test_no_speech(pipeline: AudioPipeline) -> None:
    noise = (0.002 * np.random.default_rng(5).standard_normal(4 * SR)).astype(np.float32)
    rejects(lambda: pipeline.prepare(decoded(noise)), "no speech found in 4.00 s")


def test_not_enough_speech(
    pipeline: AudioPipeline, short_word_16k: np.ndarray, speech_16k: np.ndarray, vad: SileroVad
) -> None:
    msg = rejects(
        lambda: pipeline.prepare(decoded(pad(short_word_16k, 2.0))), "s of speech found in", "need at least 1.00 s"
    )
    assert msg.startswith("only 0.")
    strict = AudioPipeline(vad, SR, AudioLimits(min_speech_seconds=10.0))
    rejects(lambda: strict.prepare(decoded(pad(speech_16k, 1.0))), "need at least 10.00 s")


def test_decode_request_routing_and_errors() -> None:
    pcm = (np.sin(np.arange(SR) * 0.1) * 8000).astype("<i2").tobytes()
    d = decode_request(pcm=pcm, sample_rate=SR, pcm_format="s16le")  # channels 0 → mono
    assert d.channels == 1 and d.duration == pytest.approx(1.0)
    rejects(lambda: decode_request(), "no audio", "exactly one")
    rejects(lambda: decode_request(encoded=b"x", pcm=b"x"), "both")
    rejects(lambda: decode_request(pcm=pcm, pcm_format="s16le"), "sample rate", "8000 to 192000")
    rejects(lambda: decode_request(pcm=pcm, sample_rate=SR), "sample format", "s16le")
    rejects(lambda: decode_request(encoded=b""), "empty")
    limits = AudioLimits(max_sample_rate=48_000, max_channels=2)
    rejects(
        lambda: decode_request(pcm=pcm, sample_rate=96_000, pcm_format="s16le", limits=limits),
        "96000 Hz",
        "8000 to 48000 Hz",
    )
    rejects(
        lambda: decode_request(pcm=pcm[:12], sample_rate=SR, channels=3, pcm_format="s16le", limits=limits),
        "3 channels",
        "1 to 2",
    )


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        AudioLimits(min_speech_seconds=5.0, max_seconds=2.0)
    with pytest.raises(ValueError):
        AudioPipeline(None, 0)
