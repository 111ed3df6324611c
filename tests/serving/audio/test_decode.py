"""decode_encoded / decode_pcm: round trips and every rejection with its message."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from serving.audio.decode import MAX_DECODED_SAMPLES, decode_encoded, decode_pcm
from serving.errors import InvalidInput, Overloaded
from tests.serving.audio.helpers import encode

SR = 16_000


def tone(seconds: float = 1.0, sr: int = SR, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("fmt", "subtype", "tol", "label"),
    [
        ("WAV", "PCM_16", 1 / 32768, "WAV/PCM_16"),
        ("WAV", "PCM_24", 1 / 2**23, "WAV/PCM_24"),
        ("WAV", "FLOAT", 0.0, "WAV/FLOAT"),
        ("FLAC", "PCM_16", 1 / 32768, "FLAC/PCM_16"),
        ("FLAC", "PCM_24", 1 / 2**23, "FLAC/PCM_24"),
        ("AIFF", "PCM_16", 1 / 32768, "AIFF/PCM_16"),
    ],
)
def test_lossless_round_trip(fmt: str, subtype: str, tol: float, label: str) -> None:
    x = tone()
    d = decode_encoded(encode(x, SR, fmt, subtype))
    assert d.format == label and d.sample_rate == SR and d.channels == 1
    assert d.samples.dtype == np.float32 and d.samples.shape == x.shape
    assert d.duration == pytest.approx(1.0)
    np.testing.assert_allclose(d.samples, x, atol=tol + 1e-7)
    assert not d.samples.flags.writeable


def test_ogg_vorbis_round_trip() -> None:
    x = tone(2.0, sr=44_100)
    d = decode_encoded(encode(x, 44_100, "OGG", "VORBIS"))
    assert d.format == "OGG/VORBIS" and d.sample_rate == 44_100
    assert d.duration == pytest.approx(2.0, abs=0.01)
    n = min(len(x), len(d.samples))
    # Lossy: compare energy and shape, not samples.
    corr = np.corrcoef(x[:n], d.samples[:n])[0, 1]
    assert corr > 0.99
    assert np.sqrt(np.mean(d.samples**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_stereo_is_averaged() -> None:
    left, right = tone(amp=0.5), tone(freq=1000.0, amp=0.25)
    d = decode_encoded(encode(np.stack([left, right], axis=1), SR, "WAV", "FLOAT"))
    assert d.channels == 2
    np.testing.assert_allclose(d.samples, (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize(
    ("fmt", "dtype", "scale"),
    [
        ("s16le", "<i2", 32767),
        ("s32le", "<i4", 2**31 - 1),
        ("f32le", "<f4", 1.0),
        ("PCM_S16LE", "<i2", 32767),
    ],
)
def test_raw_pcm_formats(fmt: str, dtype: str, scale: float) -> None:
    x = tone(0.5)
    data = np.round(x * scale).astype(dtype).tobytes() if scale != 1.0 else x.astype(dtype).tobytes()
    d = decode_pcm(data, SR, 1, fmt)
    assert d.sample_rate == SR and d.channels == 1 and d.duration == pytest.approx(0.5)
    assert d.format == "pcm_" + fmt.lower().removeprefix("pcm_")
    np.testing.assert_allclose(d.samples, x, atol=1 / 32768)


def test_raw_pcm_stereo_interleaved() -> None:
    frames = np.array([[1000, -1000], [3000, 1000], [-32768, 32767]], dtype="<i2")
    d = decode_pcm(frames.tobytes(), 8_000, 2, "s16le")
    np.testing.assert_allclose(d.samples, frames.mean(axis=1) / 32768, atol=1e-7)
    assert d.channels == 2 and d.samples.shape == (3,)


# --------------------------------------------------------------------------- rejections


def rejects(call, *needles: str, exc: type[Exception] = InvalidInput) -> str:
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    return message


def test_empty_body() -> None:
    rejects(lambda: decode_encoded(b""), "empty", "WAV, FLAC")


def test_garbage_bytes() -> None:
    msg = rejects(lambda: decode_encoded(b"this is not audio at all " * 20), "could not decode")
    assert "BytesIO" not in msg and "accepted" in msg


def test_truncated_wav_names_the_durations() -> None:
    data = encode(tone(3.0), SR)  # 44-byte header + 96000 bytes of PCM_16
    rejects(lambda: decode_encoded(data[: 44 + 2 * 19_200]), "truncated WAV: header declares 3.00 s, body holds 1.20 s")


@pytest.mark.parametrize(
    ("fmt", "subtype"), [("WAV", "FLOAT"), ("RF64", "PCM_16"), ("AIFF", "PCM_16"), ("AU", "PCM_16")]
)
def test_truncated_other_containers(fmt: str, subtype: str) -> None:
    data = encode(tone(3.0), SR, fmt, subtype)
    rejects(lambda: decode_encoded(data[: len(data) // 2]), "truncated", "header declares 3.00 s")


def test_truncated_flac() -> None:
    data = encode(tone(3.0), SR, "FLAC")
    rejects(lambda: decode_encoded(data[: len(data) // 3]), "FLAC", "truncated or corrupt")


def test_wav_with_trailing_bytes_is_fine() -> None:
    d = decode_encoded(encode(tone(1.0), SR) + b"\x00" * 7)
    assert d.duration == pytest.approx(1.0)


def test_streamed_wav_with_unknown_size_is_not_called_truncated() -> None:
    data = bytearray(encode(tone(1.0), SR))
    struct.pack_into("<I", data, 40, 0xFFFFFFFF)  # data chunk size of a WAV written to a pipe
    struct.pack_into("<I", data, 4, 0xFFFFFFFF)
    d = decode_encoded(bytes(data))
    assert d.duration == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_wav(bad: float) -> None:
    x = tone(0.2)
    x[100] = bad
    rejects(lambda: decode_encoded(encode(x, SR, "WAV", "FLOAT")), "NaN or infinite", "finite")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_f32_pcm(bad: float) -> None:
    x = tone(0.2)
    x[5] = bad
    rejects(lambda: decode_pcm(x.tobytes(), SR, 1, "f32le"), "NaN or infinite")


def test_integer_scaled_floats() -> None:
    x = tone(0.2) * 32767
    rejects(lambda: decode_pcm(x.tobytes(), SR, 1, "f32le"), "[-1, 1]", "s16le")


def test_zero_length() -> None:
    rejects(lambda: decode_encoded(encode(np.zeros(0, np.float32), SR)), "no samples")
    rejects(lambda: decode_pcm(b"", SR, 1, "s16le"), "empty")


@pytest.mark.parametrize("rate", [4_000, 384_000])
def test_unsupported_sample_rate(rate: int) -> None:
    rejects(
        lambda: decode_encoded(encode(tone(0.1, sr=rate), rate)),
        f"sample rate {rate} Hz",
        "supported: 8000 to 192000 Hz",
    )
    rejects(lambda: decode_pcm(b"\x00\x00" * 100, rate, 1, "s16le"), f"{rate} Hz", "8000 to 192000")


def test_too_many_channels() -> None:
    rejects(lambda: decode_encoded(encode(np.full((100, 9), 0.1, np.float32), SR)), "9 channels", "1 to 8")
    rejects(lambda: decode_pcm(b"\x00\x00" * 10, SR, 0, "s16le"), "0 channels")


def test_odd_byte_count_s16() -> None:
    rejects(lambda: decode_pcm(b"\x00" * 1001, SR, 1, "s16le"), "1001 bytes", "multiple of the frame size 2")
    rejects(lambda: decode_pcm(b"\x00" * 6, SR, 2, "s16le"), "frame size 4", "2 channels")


def test_unknown_pcm_format() -> None:
    rejects(lambda: decode_pcm(b"\x00" * 4, SR, 1, "u8"), "'u8'", "s16le, s32le, f32le")


def test_max_seconds() -> None:
    rejects(lambda: decode_encoded(encode(tone(3.0), SR), max_seconds=2.0), "3.00 s", "2.00 s")
    rejects(lambda: decode_pcm(b"\x00\x00" * SR * 3, SR, 1, "s16le", max_seconds=2.0), "3.00 s")


def test_declared_size_beyond_the_decode_cap_is_refused_before_decoding() -> None:
    # A FLAC header may declare hours; this one declares MAX_DECODED_SAMPLES + 1 frames.
    data = bytearray(encode(tone(0.1), SR, "FLAC"))
    # STREAMINFO: 'fLaC', block header (4), then 10 bytes, then 36 bits of total samples.
    total = MAX_DECODED_SAMPLES + 1
    pos = 4 + 4 + 13
    data[pos] = (data[pos] & 0xF0) | ((total >> 32) & 0x0F)
    struct.pack_into(">I", data, pos + 1, total & 0xFFFFFFFF)
    rejects(lambda: decode_encoded(bytes(data)), "the limit is", exc=Overloaded)
