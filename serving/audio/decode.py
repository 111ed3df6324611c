"""Turn request bytes into mono float32 samples (DESIGN §3 "Serving": decode → resample → VAD).

Two entry points, one per form of the request's audio oneof:

* :func:`decode_encoded` — a container libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3, AIFF, …);
* :func:`decode_pcm` — headerless little-endian PCM with an explicit rate, channel count and format.

Both return :class:`DecodedAudio` or raise :class:`~serving.errors.InvalidInput` with a message
that says what was wrong and what is accepted. Nothing else may escape: the bytes are untrusted.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from serving.errors import InvalidInput, Overloaded

# Defaults shared with serving.audio.pipeline.AudioLimits (kept here so decode has no upward import).
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
# Float audio is nominally within [-1, 1]; masters may overshoot a little, but a peak of +24 dBFS
# or more means the client sent integer-scaled values as float (a common bug) or garbage.
MAX_FLOAT_PEAK = 16.0
# Hard cap on decoded samples (all channels) whatever the duration limit: 2**26 float32 = 256 MiB.
# A few kilobytes of FLAC can declare hours of silence; this bounds what one request allocates.
MAX_DECODED_SAMPLES = 2**26

PCM_FORMATS: dict[str, tuple[str, float]] = {
    # name → (numpy dtype, scale to [-1, 1))
    "s16le": ("<i2", 1.0 / 32768.0),
    "s32le": ("<i4", 1.0 / 2147483648.0),
    "f32le": ("<f4", 1.0),
}

ACCEPTED_ENCODED = "WAV, FLAC, OGG/Vorbis, MP3, AIFF or another format libsndfile reads"

# Bytes per sample of the libsndfile subtypes whose size is proportional to duration.
_SUBTYPE_WIDTH = {
    "PCM_S8": 1,
    "PCM_U8": 1,
    "PCM_16": 2,
    "PCM_24": 3,
    "PCM_32": 4,
    "FLOAT": 4,
    "DOUBLE": 8,
    "ULAW": 1,
    "ALAW": 1,
}
# A container's frame count may be an estimate (MP3); a shortfall below this is not truncation.
_SHORTFALL_TOLERANCE_S = 0.05


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    """Decoded request audio.

    samples: float32 [n] mono (channels averaged), nominal range [-1, 1], read-only.
    sample_rate: Hz, as sent. channels: the channel count before down-mixing.
    format: e.g. ``"WAV/PCM_16"``, ``"OGG/VORBIS"``, ``"pcm_s16le"``. duration: seconds.
    """

    samples: np.ndarray
    sample_rate: int
    channels: int
    format: str
    duration: float


def decode_encoded(
    data: bytes,
    *,
    min_rate: int = MIN_SAMPLE_RATE,
    max_rate: int = MAX_SAMPLE_RATE,
    max_channels: int = MAX_CHANNELS,
    max_seconds: float | None = None,
) -> DecodedAudio:
    """Decode an encoded audio file held in memory.

    Rejects (InvalidInput): an empty body, bytes no decoder recognises, a truncated or corrupt
    file, rates outside [min_rate, max_rate], more than max_channels channels, non-finite or
    absurdly large float samples, zero-length audio, and audio longer than max_seconds (checked
    from the header before decoding). Overloaded when it would decode to more than
    MAX_DECODED_SAMPLES, so a small compressed file cannot expand without bound.
    """
    if not data:
        raise InvalidInput(f"encoded audio is empty (0 bytes); send a file: {ACCEPTED_ENCODED}")
    try:
        snd = sf.SoundFile(_ClampedBytesIO(data))
    except Exception as exc:  # libsndfile's reasons are all about the bytes, never our state
        raise InvalidInput(
            f"could not decode audio ({_reason(exc)}); accepted: {ACCEPTED_ENCODED}"
            ", or raw PCM with an explicit sample rate"
        ) from None
    with snd:
        kind = f"{snd.format}/{snd.subtype}"
        _check_layout(snd.samplerate, snd.channels, min_rate, max_rate, max_channels, kind)
        # The header's frame count (exact for WAV/FLAC/OGG, an estimate for MP3): checked
        # before anything is decoded, so oversized audio costs no decoding work.
        wanted = max(int(snd.frames), 0)
        if max_seconds is not None:
            _check_max_seconds(wanted / snd.samplerate, max_seconds)
        _check_decoded_size(wanted, snd.channels)
        try:
            frames = snd.read(frames=wanted, dtype="float32", always_2d=True)
        except Exception as exc:
            raise InvalidInput(
                f"could not decode {kind} audio ({_reason(exc)}); the file may be truncated or corrupt"
            ) from None
        rate, channels, subtype = snd.samplerate, snd.channels, snd.subtype
    _check_truncated_container(data, rate, channels, subtype)
    _check_shortfall(frames.shape[0], wanted, rate, kind)
    return _finish(frames, rate, channels, kind)


def decode_pcm(
    data: bytes,
    sample_rate: int,
    channels: int,
    fmt: str,
    *,
    min_rate: int = MIN_SAMPLE_RATE,
    max_rate: int = MAX_SAMPLE_RATE,
    max_channels: int = MAX_CHANNELS,
    max_seconds: float | None = None,
) -> DecodedAudio:
    """Decode headerless interleaved little-endian PCM.

    fmt: one of ``s16le``, ``s32le``, ``f32le`` (case-insensitive, a ``pcm_`` prefix is allowed).
    The byte count must be a whole number of frames (channels × sample width).
    """
    name = fmt.strip().lower().removeprefix("pcm_")
    if name not in PCM_FORMATS:
        raise InvalidInput(f"unsupported PCM sample format {fmt!r}; accepted: {', '.join(PCM_FORMATS)}")
    dtype, scale = PCM_FORMATS[name]
    kind = f"pcm_{name}"
    _check_layout(sample_rate, channels, min_rate, max_rate, max_channels, kind)
    if not data:
        raise InvalidInput("raw PCM audio is empty (0 bytes)")
    frame_bytes = np.dtype(dtype).itemsize * channels
    if len(data) % frame_bytes:
        raise InvalidInput(
            f"raw PCM body is {len(data)} bytes, not a multiple of the frame size {frame_bytes} "
            f"bytes ({name} × {channels} channel{'s' if channels > 1 else ''}); "
            "the stream is cut mid-frame or the format/channel count is wrong"
        )
    n_frames = len(data) // frame_bytes
    if max_seconds is not None:
        _check_max_seconds(n_frames / sample_rate, max_seconds)
    _check_decoded_size(n_frames, channels)
    raw = np.frombuffer(data, dtype=dtype).reshape(n_frames, channels)
    frames = raw.astype(np.float32)
    if scale != 1.0:
        frames *= np.float32(scale)
    return _finish(frames, sample_rate, channels, kind)


class _ClampedBytesIO(io.BytesIO):
    """BytesIO whose seek before the start lands on 0 instead of raising.

    libsndfile seeks to negative offsets on some malformed headers; the ValueError would be
    swallowed inside soundfile's cffi callback (which then reports position 0) and printed to
    stderr as an "exception ignored". Landing on 0 gives libsndfile the same answer, quietly.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._size = len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self._size}
        if base.get(whence, 0) + offset < 0:
            return super().seek(0)
        return super().seek(offset, whence)


# --------------------------------------------------------------------------- checks


def _finish(frames: np.ndarray, rate: int, channels: int, kind: str) -> DecodedAudio:
    """frames: float32 [n, channels] → validated, down-mixed, read-only DecodedAudio."""
    if frames.shape[0] == 0:
        raise InvalidInput(f"audio holds no samples (0 s of {kind}); send at least some audio")
    if not np.isfinite(frames).all():
        bad = int(np.count_nonzero(~np.isfinite(frames)))
        raise InvalidInput(f"audio contains {bad} NaN or infinite sample(s); samples must be finite numbers")
    peak = float(np.max(np.abs(frames)))
    if peak > MAX_FLOAT_PEAK:
        raise InvalidInput(
            f"float samples must be in [-1, 1] (full scale); the peak is {peak:.4g} — "
            "integer-scaled values sent as float? Use s16le/s32le for integer samples"
        )
    # Accumulate in float64: the channel mean must not round differently with channel order.
    mono = frames[:, 0] if channels == 1 else frames.mean(axis=1, dtype=np.float64)
    samples = np.ascontiguousarray(mono, dtype=np.float32)
    samples.flags.writeable = False
    return DecodedAudio(samples, int(rate), int(channels), kind, samples.shape[0] / rate)


def _check_layout(rate: int, channels: int, min_rate: int, max_rate: int, max_channels: int, kind: str) -> None:
    if not min_rate <= rate <= max_rate:
        raise InvalidInput(
            f"sample rate {rate} Hz of {kind} audio is not supported; supported: {min_rate} to {max_rate} Hz"
        )
    if not 1 <= channels <= max_channels:
        raise InvalidInput(
            f"{channels} channels of {kind} audio is not supported; supported: 1 to {max_channels} channels"
        )


def _check_max_seconds(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise InvalidInput(f"audio is {seconds:.2f} s long; the limit is {max_seconds:.2f} s")


def _check_decoded_size(frames: int, channels: int) -> None:
    if frames * channels > MAX_DECODED_SAMPLES:
        raise Overloaded(
            f"audio would decode to {frames * channels} samples; the limit is {MAX_DECODED_SAMPLES} (send less audio)"
        )


def _check_shortfall(got: int, wanted: int, rate: int, kind: str) -> None:
    """libsndfile stops early on a damaged stream whose header promised more frames."""
    if wanted - got > max(_SHORTFALL_TOLERANCE_S * rate, 0.01 * wanted):
        raise InvalidInput(
            f"truncated {kind} audio: header declares {wanted / rate:.2f} s, body holds {got / rate:.2f} s"
        )


def _check_truncated_container(data: bytes, rate: int, channels: int, subtype: str) -> None:
    """WAV/AIFF/AU: libsndfile silently shortens a file whose data chunk is cut; compare the
    declared chunk size with the bytes present and reject a shortfall of a frame or more."""
    found = _declared_audio_bytes(data)
    if found is None:
        return
    container, declared, present = found
    width = _SUBTYPE_WIDTH.get(subtype)
    frame_bytes = width * channels if width else 1
    if declared - present < frame_bytes:
        return
    if width:
        per_second = frame_bytes * rate
        raise InvalidInput(
            f"truncated {container}: header declares {declared / per_second:.2f} s, "
            f"body holds {present / per_second:.2f} s"
        )
    raise InvalidInput(f"truncated {container}: header declares {declared} bytes of audio, body holds {present}")


def _reason(exc: Exception) -> str:
    """libsndfile's own words, without the BytesIO repr soundfile puts in front of them."""
    text = getattr(exc, "error_string", None) or str(exc)
    text = text.split(": ", 1)[1] if text.startswith("Error opening <") else text
    return text.strip().rstrip(".") or type(exc).__name__


# --------------------------------------------------------------------------- RIFF / IFF walk

_RIFF_KINDS = {b"RIFF": "<", b"RIFX": ">", b"RF64": "<"}
_MAX_CHUNKS = 4096  # a real file has a handful; bound the walk over hostile bytes


def _declared_audio_bytes(data: bytes) -> tuple[str, int, int] | None:
    """(container, declared audio bytes, bytes present) for WAV/RF64/AIFF/AU, else None.

    Returns None when the size is unknown (streamed WAVs write 0 or 0xFFFFFFFF) or the header
    cannot be walked; libsndfile then has the last word.
    """
    if len(data) < 12:
        return None
    magic, form = data[:4], data[8:12]
    if magic in _RIFF_KINDS and form == b"WAVE":
        return _walk(data, _RIFF_KINDS[magic], b"data", 0, "WAV")
    if magic == b"FORM" and form in (b"AIFF", b"AIFC"):
        return _walk(data, ">", b"SSND", 8, "AIFF")  # SSND starts with offset + block size
    if magic == b".snd":  # Sun AU: data offset and size in a fixed big-endian header
        offset, size = struct.unpack(">II", data[4:12])
        if size in (0, 0xFFFFFFFF) or offset < 24:
            return None
        return "AU", size, max(len(data) - offset, 0)
    return None


def _walk(data: bytes, endian: str, target: bytes, skip: int, container: str) -> tuple[str, int, int] | None:
    """Find chunk `target` in an IFF-style file; `skip` header bytes inside it are not audio."""
    offset, ds64_size = 12, None
    for _ in range(_MAX_CHUNKS):
        if offset + 8 > len(data):
            return None
        cid = data[offset : offset + 4]
        (size,) = struct.unpack(endian + "I", data[offset + 4 : offset + 8])
        body = offset + 8
        if cid == b"ds64" and size >= 16 and body + 16 <= len(data):
            (ds64_size,) = struct.unpack("<Q", data[body + 8 : body + 16])  # RF64 data size
        if cid == target:
            if size == 0xFFFFFFFF and ds64_size is not None:
                size = ds64_size
            if size in (0, 0xFFFFFFFF) or size <= skip:
                return None
            return container, size - skip, max(len(data) - body - skip, 0)
        offset = body + size + (size & 1)  # chunks are padded to an even length
    return None
