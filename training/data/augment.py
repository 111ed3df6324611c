"""On-the-fly waveform augmentation for speaker training crops (numpy/scipy only).

Runs inside DataLoader workers, so it uses no torch and no subprocesses (the SoX effects of
training.data.channel_effects are for building corpora offline). Each branch fires with its own
probability and the branches run in the physical order of a recording — talker (speed) → room
(reverb) → ambient noise → channel (band-pass) — as channel_effects does. Everything random is
drawn from the caller's ``numpy.random.Generator``: same generator state, same output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

import numpy as np

from training.data.channel_effects import NOISE_COLORS, add_noise

_RT60_DECAY = 3.0 * np.log(10.0)  # amplitude falls 60 dB (a factor 10³) at t = RT60


@dataclass(frozen=True)
class AugmentDraw:
    """The random choices for one crop; a branch is off where its field is None.

    speed: playback-rate factor (>1 faster/shorter). rt60_s: reverberation time, seconds.
    drr_db: direct-to-reverberant energy ratio of the synthetic room, dB.
    snr_db: speech-to-noise power ratio, dB; noise_color: its colour.
    band_hz: (low, high) cut-off frequencies of the band-pass, Hz.
    seed: seeds the noise, the room impulse response and the speed crop offset.
    """

    speed: float | None = None
    rt60_s: float | None = None
    drr_db: float | None = None
    snr_db: float | None = None
    noise_color: str | None = None
    band_hz: tuple[float, float] | None = None
    seed: int = 0


@dataclass(frozen=True)
class Augmenter:
    """Random speed, reverb, additive noise and band-pass applied to a crop; length kept.

    Its fields are the recipe's ``augment:`` section (``Augmenter.from_config``); ranges are
    ``(low, high)`` pairs drawn uniformly. ``speeds`` is a set of factors chosen from with equal
    probability, as in Kaldi-style speed perturbation; the change is done by resampling, so
    pitch moves with tempo. Noise colours are those of channel_effects.colored_noise. The
    synthetic room is exponentially decaying Gaussian noise (60 dB down at RT60) behind a
    direct-path impulse, energy-normalised, with the output rescaled to the input's RMS.
    The band-pass is a Butterworth filter of ``bandpass_order`` (scipy ``sosfilt``).
    """

    noise_snr_db: tuple[float, float] = (5.0, 20.0)
    noise_p: float = 0.6
    noise_colors: tuple[str, ...] = NOISE_COLORS
    reverb_p: float = 0.3
    rt60_s: tuple[float, float] = (0.2, 0.8)
    drr_db: tuple[float, float] = (-3.0, 10.0)
    speed_p: float = 0.2
    speeds: tuple[float, ...] = (0.9, 1.1)
    bandpass_p: float = 0.2
    bandpass_low_hz: tuple[float, float] = (50.0, 400.0)
    bandpass_high_hz: tuple[float, float] = (3000.0, 7000.0)
    bandpass_order: int = 4
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        # YAML gives lists; freeze them so the augmenter stays hashable and immutable.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        self._validate()

    def _validate(self) -> None:
        for name in ("noise_p", "reverb_p", "speed_p", "bandpass_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("noise_snr_db", "rt60_s", "drr_db", "bandpass_low_hz", "bandpass_high_hz"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"augment.{name} must be (low, high), got {(lo, hi)}")
        if self.rt60_s[0] <= 0:
            raise ValueError(f"augment.rt60_s must be positive, got {self.rt60_s}")
        if not self.noise_colors or set(self.noise_colors) - set(NOISE_COLORS):
            raise ValueError(f"augment.noise_colors must be among {NOISE_COLORS}, got {self.noise_colors}")
        if not self.speeds or min(self.speeds) <= 0:
            raise ValueError(f"augment.speeds must be positive factors, got {self.speeds}")
        nyquist = self.sample_rate / 2
        if not (0 < self.bandpass_low_hz[0] and self.bandpass_low_hz[1] < self.bandpass_high_hz[0]):
            raise ValueError("augment band-pass needs 0 < low cut-offs < high cut-offs")
        if self.bandpass_p > 0 and self.bandpass_high_hz[1] >= nyquist:
            raise ValueError(f"augment.bandpass_high_hz must stay below Nyquist ({nyquist} Hz)")

    @classmethod
    def none(cls, sample_rate: int = 16000) -> Augmenter:
        """An augmenter that returns its input unchanged (as float32)."""
        return cls(noise_p=0.0, reverb_p=0.0, speed_p=0.0, bandpass_p=0.0, sample_rate=sample_rate)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | bool | None, sample_rate: int | None = None) -> Augmenter:
        """The augmenter for a recipe's ``augment:`` section.

        None (no section) or ``false``: no augmentation; ``{}`` or ``true``: the defaults;
        a mapping: these fields over the defaults. ``sample_rate`` fills in the field when the
        section does not set it. Unknown keys are errors (recipes load strictly).
        """
        if section is None or section is False:
            return cls.none(sample_rate or 16000)
        section = {} if section is True else dict(section)
        if sample_rate is not None:
            section.setdefault("sample_rate", sample_rate)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown augment keys {unknown}; known: {sorted(known)}")
        return cls(**section)

    @property
    def enabled(self) -> bool:
        """Whether any branch can fire."""
        return any(p > 0 for p in (self.noise_p, self.reverb_p, self.speed_p, self.bandpass_p))

    def draw(self, rng: np.random.Generator) -> AugmentDraw:
        """Draw the random choices for one crop (which branches fire, and their parameters)."""

        def uniform(bounds: tuple[float, float]) -> float:
            return float(rng.uniform(*bounds))

        speed = rt60 = drr = snr = color = band = None
        if rng.random() < self.speed_p:
            speed = float(self.speeds[int(rng.integers(len(self.speeds)))])
        if rng.random() < self.reverb_p:
            rt60, drr = uniform(self.rt60_s), uniform(self.drr_db)
        if rng.random() < self.noise_p:
            snr = uniform(self.noise_snr_db)
            color = self.noise_colors[int(rng.integers(len(self.noise_colors)))]
        if rng.random() < self.bandpass_p:
            band = (uniform(self.bandpass_low_hz), uniform(self.bandpass_high_hz))
        return AugmentDraw(
            speed=speed,
            rt60_s=rt60,
            drr_db=drr,
            snr_db=snr,
            noise_color=color,
            band_hz=band,
            seed=int(rng.integers(2**63)),
        )

    def apply(self, x: np.ndarray, draw: AugmentDraw) -> np.ndarray:
        """Apply ``draw`` to mono audio ``x`` [samples]; float32 [samples] out."""
        y = np.asarray(x, dtype=np.float64)
        if y.ndim != 1:
            raise ValueError(f"expected mono audio [samples], got shape {y.shape}")
        if draw.speed is not None and draw.speed != 1.0:
            y = change_speed(y, draw.speed, np.random.default_rng([draw.seed, 0]))
        if draw.rt60_s is not None:
            rir = synthetic_rir(
                draw.rt60_s, draw.drr_db or 0.0, self.sample_rate, np.random.default_rng([draw.seed, 1])
            )
            y = reverberate(y, rir)
        if draw.snr_db is not None:
            y = add_noise(
                y, draw.snr_db, draw.noise_color or "white", np.random.default_rng([draw.seed, 2]), self.sample_rate
            )
        if draw.band_hz is not None:
            y = bandpass(y, *draw.band_hz, self.sample_rate, self.bandpass_order)
        return y.astype(np.float32)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment mono audio ``x`` [samples] with choices drawn from ``rng``; same length."""
        if not self.enabled:  # skip the draws: the no-augmentation path costs nothing
            return np.asarray(x, dtype=np.float32)
        return self.apply(x, self.draw(rng))


def change_speed(x: np.ndarray, speed: float, rng: np.random.Generator) -> np.ndarray:
    """Play ``x`` [n] ``speed`` times faster (resampling; pitch moves too); [n] out.

    A slowed-down signal is longer than n: a random n-sample window of it is kept. A sped-up
    one is shorter: it is looped to n samples, like a short utterance in AudioStore.crop.
    """
    from scipy.signal import resample_poly

    ratio = Fraction(speed).limit_denominator(100)
    y = resample_poly(x, ratio.denominator, ratio.numerator)
    n = x.size
    if y.size >= n:
        start = int(rng.integers(0, y.size - n + 1))
        return y[start : start + n]
    return y[np.arange(n) % y.size] if y.size else np.zeros(n)


def synthetic_rir(rt60_s: float, drr_db: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response [round(rt60·rate)]: a direct-path impulse, then a Gaussian
    tail decaying 60 dB over ``rt60_s`` with tail energy ``drr_db`` below the direct path;
    unit energy overall (Polack's statistical model of late reverberation)."""
    n = max(2, round(rt60_s * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-_RT60_DECAY * t / rt60_s)
    tail[0] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail**2))


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir``, cut to len(x) and rescaled to the input's RMS."""
    from scipy.signal import fftconvolve

    y = fftconvolve(x, rir)[: x.size]
    power_in, power_out = float(np.mean(x**2)), float(np.mean(y**2))
    return y * np.sqrt(power_in / power_out) if power_out > 0 else y


def bandpass(x: np.ndarray, low_hz: float, high_hz: float, sample_rate: int, order: int = 4) -> np.ndarray:
    """Butterworth band-pass [low_hz, high_hz] of ``x`` (causal ``sosfilt``, same length)."""
    from scipy.signal import butter, sosfilt

    sos = butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    return sosfilt(sos, x)
