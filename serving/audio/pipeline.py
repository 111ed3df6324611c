"""Request audio → what a speaker model takes (DESIGN §3: decode → resample → VAD).

:func:`decode_request` takes the already-extracted fields of the request's audio oneof (plain
Python values, no protobuf types) so the servicer stays thin; :class:`AudioPipeline` resamples
to the model's rate, enforces :class:`AudioLimits` and trims non-speech with Silero VAD. Every
rejection is an :class:`~serving.errors.InvalidInput` whose message carries the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, Unpack

import numpy as np

from serving.audio import decode as _decode
from serving.audio.decode import DecodedAudio, decode_encoded, decode_pcm
from serving.audio.resample import resample
from serving.audio.vad import SAMPLE_RATE as VAD_RATE
from serving.audio.vad import SileroVad, VadParams, trim_to_speech
from serving.errors import InvalidInput


@dataclass(frozen=True)
class AudioLimits:
    """What the gateway accepts. Seconds are of audio, rates in Hz.

    min_speech_seconds: speech left after VAD trimming (or the whole clip without a VAD).
    max_seconds: the whole clip, before trimming (bounds decode, VAD and model cost).
    silence_peak: a clip whose peak deviation from its mean is below this is digital silence.
    """

    min_speech_seconds: float = 1.0
    max_seconds: float = 60.0
    min_sample_rate: int = _decode.MIN_SAMPLE_RATE
    max_sample_rate: int = _decode.MAX_SAMPLE_RATE
    max_channels: int = _decode.MAX_CHANNELS
    silence_peak: float = 1e-4

    def __post_init__(self) -> None:
        if not 0 <= self.min_speech_seconds <= self.max_seconds:
            raise ValueError("need 0 <= min_speech_seconds <= max_seconds")
        if not 0 < self.min_sample_rate <= self.max_sample_rate:
            raise ValueError("need 0 < min_sample_rate <= max_sample_rate")
        if self.max_channels < 1:
            raise ValueError("max_channels must be at least 1")


@dataclass(frozen=True, eq=False)
class PreparedAudio:
    """Model-ready audio.

    samples: float32 [n] mono at sample_rate, speech only when a VAD ran (read-only).
    input_seconds: the clip as received; speech_seconds: len(samples) / sample_rate.
    segments: the speech kept, as [start, end) sample indices into the resampled clip.
    """

    samples: np.ndarray
    sample_rate: int
    input_seconds: float
    speech_seconds: float
    segments: tuple[tuple[int, int], ...]


class AudioFields(TypedDict, total=False):
    """The audio oneof's fields as plain values: what :func:`decode_request` takes besides ``limits``."""

    encoded: bytes | None
    pcm: bytes | None
    sample_rate: int
    channels: int
    pcm_format: str


class _Bounds(TypedDict):
    min_rate: int
    max_rate: int
    max_channels: int
    max_seconds: float | None


def decode_request(
    *,
    encoded: bytes | None = None,
    pcm: bytes | None = None,
    sample_rate: int = 0,
    channels: int = 0,
    pcm_format: str = "",
    limits: AudioLimits = AudioLimits(),
) -> DecodedAudio:
    """Decode the audio oneof of a request: exactly one of ``encoded`` / ``pcm`` is not None.

    For ``pcm``, ``sample_rate`` and ``pcm_format`` (s16le | s32le | f32le) are required;
    ``channels`` 0 (the protobuf default) means mono. They are ignored for ``encoded`` audio,
    whose header is authoritative.
    """
    if (encoded is None) == (pcm is None):
        what = "both encoded audio and raw PCM" if encoded is not None else "no audio"
        raise InvalidInput(
            f"request carries {what}; set exactly one of encoded audio "
            "(WAV, FLAC, OGG, …) or raw PCM with its sample rate and format"
        )
    bounds = _Bounds(
        min_rate=limits.min_sample_rate,
        max_rate=limits.max_sample_rate,
        max_channels=limits.max_channels,
        max_seconds=limits.max_seconds,
    )
    if encoded is not None:
        return decode_encoded(encoded, **bounds)
    assert pcm is not None  # exactly one of the two, checked above
    if sample_rate <= 0:
        raise InvalidInput(
            f"raw PCM needs its sample rate (got {sample_rate}); supported: "
            f"{limits.min_sample_rate} to {limits.max_sample_rate} Hz"
        )
    if not pcm_format:
        raise InvalidInput("raw PCM needs its sample format; accepted: " + ", ".join(_decode.PCM_FORMATS))
    return decode_pcm(pcm, sample_rate, channels or 1, pcm_format, **bounds)


class AudioPipeline:
    """Decoded audio → :class:`PreparedAudio` at ``target_rate`` (the speaker model's rate).

    vad: trims non-speech when given; None keeps the whole clip (e.g. sound models).
    """

    def __init__(
        self,
        vad: SileroVad | None,
        target_rate: int,
        limits: AudioLimits = AudioLimits(),
        vad_params: VadParams = VadParams(),
    ) -> None:
        if target_rate <= 0:
            raise ValueError(f"target_rate must be positive, got {target_rate}")
        self.vad = vad
        self.target_rate = target_rate
        self.limits = limits
        self.vad_params = vad_params

    def prepare_request(self, **fields: Unpack[AudioFields]) -> PreparedAudio:
        """:func:`decode_request` (with this pipeline's limits) then :meth:`prepare`."""
        return self.prepare(decode_request(limits=self.limits, **fields))

    def prepare(self, audio: DecodedAudio) -> PreparedAudio:
        """Resample → length checks → silence check → VAD trim → minimum-speech check."""
        x = resample(audio.samples, audio.sample_rate, self.target_rate)
        seconds = x.shape[0] / self.target_rate
        self._check_length(seconds)
        self._check_not_silent(x, seconds)
        segments: tuple[tuple[int, int], ...]
        if self.vad is None:
            segments = ((0, x.shape[0]),)
            speech = x
        else:
            segments = self._speech_segments(self.vad, x)
            if not segments:
                raise InvalidInput(f"no speech found in {seconds:.2f} s of audio")
            speech = trim_to_speech(x, list(segments))
        speech_seconds = speech.shape[0] / self.target_rate
        need = self.limits.min_speech_seconds
        if self.vad is not None and speech_seconds < need:
            raise InvalidInput(
                f"only {speech_seconds:.2f} s of speech found in {seconds:.2f} s of audio; need at least {need:.2f} s"
            )
        speech = np.ascontiguousarray(speech, dtype=np.float32)
        speech.flags.writeable = False
        return PreparedAudio(speech, self.target_rate, seconds, speech_seconds, segments)

    def _check_length(self, seconds: float) -> None:
        lim = self.limits
        if seconds > lim.max_seconds:
            raise InvalidInput(f"audio is {seconds:.2f} s long; the limit is {lim.max_seconds:.2f} s")
        if seconds < lim.min_speech_seconds:
            what = "of speech" if self.vad is not None else "of audio"
            raise InvalidInput(
                f"audio is only {seconds:.2f} s long; need at least {lim.min_speech_seconds:.2f} s {what}"
            )

    def _check_not_silent(self, x: np.ndarray, seconds: float) -> None:
        # Deviation from the mean, so a constant (DC) signal counts as silence too.
        peak = float(np.max(np.abs(x - x.mean(dtype=np.float64)))) if x.size else 0.0
        if peak < self.limits.silence_peak:
            raise InvalidInput(
                f"audio is silent: {seconds:.2f} s with peak level {peak:.2g} "
                f"(below {self.limits.silence_peak:.2g} of full scale)"
            )

    def _speech_segments(self, vad: SileroVad, x: np.ndarray) -> tuple[tuple[int, int], ...]:
        """Silero runs at 16 kHz; segments are mapped back to sample indices of x."""
        if self.target_rate == VAD_RATE:
            return tuple(vad.speech_segments(x, self.vad_params))
        x16 = resample(x, self.target_rate, VAD_RATE)
        scale = self.target_rate / VAD_RATE
        n = x.shape[0]
        return tuple(
            (min(round(s * scale), n), min(round(e * scale), n)) for s, e in vad.speech_segments(x16, self.vad_params)
        )
