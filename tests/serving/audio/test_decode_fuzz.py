"""Fuzzed decoders (DESIGN §8): any bytes either decode or raise InvalidInput/Overloaded."""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.audio.decode import DecodedAudio, decode_encoded
from serving.errors import InvalidInput, Overloaded
from tests.serving.audio.helpers import encode

_rng = np.random.default_rng(7)
_X = (0.3 * _rng.standard_normal(1600)).astype(np.float32)
SEEDS = {
    "wav16": encode(_X, 16_000),
    "wav_float": encode(_X, 16_000, "WAV", "FLOAT"),
    "wav_stereo": encode(np.stack([_X, -_X], axis=1), 8_000),
    "flac": encode(_X, 16_000, "FLAC"),
    "ogg": encode(_X, 16_000, "OGG", "VORBIS"),
    "aiff": encode(_X, 16_000, "AIFF"),
}
FUZZ = settings(
    max_examples=int(os.environ.get("TOITSU_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(data: bytes) -> None:
    try:
        d = decode_encoded(data, max_seconds=60.0)
    except (InvalidInput, Overloaded) as exc:
        assert exc.message  # a message for a person, never empty
        return
    assert isinstance(d, DecodedAudio)
    assert d.samples.dtype == np.float32 and d.samples.ndim == 1 and d.samples.size > 0
    assert np.isfinite(d.samples).all()


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.data())
def test_mutated_files(name: str, data: st.DataObject) -> None:
    """Overwrite a few bytes (mostly in the header), then maybe cut or extend the file."""
    buf = bytearray(SEEDS[name])
    n_edits = data.draw(st.integers(1, 8))
    for _ in range(n_edits):
        limit = data.draw(st.sampled_from([64, len(buf)]))  # header-heavy
        pos = data.draw(st.integers(0, min(limit, len(buf)) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    tail = data.draw(st.binary(max_size=64))
    check(bytes(buf[:cut]) + tail)


@FUZZ
@given(st.sampled_from(["wav16", "wav_float", "aiff"]), st.integers(0, 11), st.integers(0, 2**32 - 1))
def test_mutated_header_fields(name: str, field: int, value: int) -> None:
    """Replace one 32-bit header field (sizes, rates, counts) with any value."""
    buf = bytearray(SEEDS[name])
    pos = 4 + 4 * field
    buf[pos : pos + 4] = value.to_bytes(4, "little" if name != "aiff" else "big")
    check(bytes(buf))
