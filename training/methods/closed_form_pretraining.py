"""Closed-form pre-training for small-sample sound recognition (METHODS §4): the formula datasets.

The method pre-trains a sound classifier on classes defined purely by formulas, then fine-tunes
it on the small real set. Every clip is colored noise with power spectrum ∝ 1/f^β, made by
shaping complex white Gaussian noise in the frequency domain by f^(−β/2) and taking the inverse
real FFT; nothing is recorded and no label is given by hand. Three class sets (D1, D2, D3) and
their union (DALL) say how β, a spectral band or a time course define a class; ``build_class_set``
is what a recipe's ``data.formula`` section calls (``METHODS["closed_form_pretraining"]``).
Clips are drawn from a caller's generator at any sample rate and length; every ``sample``
returns float32 [n] at unit RMS. Batching them (fresh seeds per step, class-balanced) is data
plumbing and lives in ``training.data.formula_batches``; the pre-train → fine-tune transfer is
the sound recipe's ``init_from`` (``training.recipes.sound``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, Protocol

import numpy as np

# f^(−β/2) is referenced to this frequency so that the weights stay near 1 whatever β and the
# sample rate are; the RMS normalisation removes the reference afterwards.
_F_REF_HZ = 1000.0


class FormulaDataset(Protocol):
    """A formula-defined class set: ``sample(c, rng, n, rate)`` draws a clip of class c."""

    @property
    def n_classes(self) -> int: ...

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def sample(self, class_index: int, rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray: ...


def _power_law_gain(f: np.ndarray, beta: float | np.ndarray) -> np.ndarray:
    """Amplitude gain f^(−β/2) (power 1/f^β), broadcast over f and β; zero at DC, where 1/f^β
    has no finite value (so every clip has zero mean)."""
    ratio = np.maximum(np.asarray(f, dtype=float), 1e-12) / _F_REF_HZ
    return np.where(np.asarray(f) > 0, ratio ** (-np.asarray(beta, dtype=float) / 2.0), 0.0)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    """x / RMS(x) as float32 (all-zero x stays zero: a band with no FFT bin in it)."""
    rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
    return (x / rms if rms > 0 else x).astype(np.float32)


def power_law_noise(
    n_samples: int, beta: float, rng: np.random.Generator, sample_rate: int = 16000, gain: np.ndarray | None = None
) -> np.ndarray:
    """Colored noise with power spectrum ∝ 1/f^β (METHODS §4): float32 [n_samples], unit RMS.

    β = 0 white, 1 pink, 2 brown (red), −1 blue, −2 violet; DC is zero. ``gain``, if given,
    is a further amplitude gain on the bins ``np.fft.rfftfreq(n_samples, 1/sample_rate)``,
    e.g. a band mask (``band_noise``).
    training.data.channel_effects.colored_noise is the fixed-colour special case used for SNR
    noise (it also removes everything below 20 Hz); this one is exact down to the first bin.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    f = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    white = rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)
    shaped = white * _power_law_gain(f, beta)
    if gain is not None:
        shaped *= gain
    return _unit_rms(np.fft.irfft(shaped, n_samples))


def band_gain(f: np.ndarray, band_hz: tuple[float, float], rolloff_octaves: float) -> np.ndarray:
    """Amplitude mask of a band: 1 on [lo, hi] Hz, raised-cosine roll-off in log frequency to 0
    at ``rolloff_octaves`` below lo and above hi, 0 beyond (DC included). Same shape as f."""
    lo, hi = band_hz
    if not 0 < lo < hi:
        raise ValueError(f"band must satisfy 0 < low < high, got {band_hz}")
    safe = np.maximum(f, 1e-12)
    octaves = np.where(f < lo, np.log2(lo / safe), np.where(f > hi, np.log2(safe / hi), 0.0))
    if rolloff_octaves <= 0:
        return (octaves == 0).astype(np.float64)
    t = np.clip(octaves / rolloff_octaves, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def band_noise(
    n_samples: int,
    beta: float,
    band_hz: tuple[float, float],
    rng: np.random.Generator,
    sample_rate: int = 16000,
    rolloff_octaves: float = 0.25,
) -> np.ndarray:
    """Band-shaped colored noise: the 1/f^β spectrum times ``band_gain`` (float32 [n], unit RMS).

    Inside the band the slope is exactly −β; the power outside [lo, hi] lies within
    ``rolloff_octaves`` of the edges. A band above Nyquist, or too narrow for the clip's FFT
    resolution, leaves no bins and gives zeros.
    """
    f = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    return power_law_noise(n_samples, beta, rng, sample_rate, gain=band_gain(f, band_hz, rolloff_octaves))


def spectral_slope(x: np.ndarray, sample_rate: int, f_lo: float, f_hi: float, nperseg: int = 1024) -> float:
    """Least-squares slope of log power vs log frequency over [f_lo, f_hi] Hz.

    The power spectrum is Welch's average of Hann-windowed periodograms of ``nperseg``-sample
    segments (50% overlap), so for 1/f^β noise the slope estimates −β (METHODS §4's property).
    Bins are equally weighted; keep f_lo at least ~10 bins (10·rate/nperseg) above DC, where
    the window's main lobe would smear a steep spectrum.
    """
    from scipy.signal import welch

    x = np.asarray(x, dtype=np.float64)
    f, p = welch(x, fs=sample_rate, nperseg=min(nperseg, x.size), window="hann")
    keep = (f >= f_lo) & (f <= f_hi) & (p > 0)
    if np.count_nonzero(keep) < 3:
        raise ValueError(
            f"fewer than 3 spectral bins in [{f_lo}, {f_hi}] Hz (bin width {sample_rate / min(nperseg, x.size):.1f} Hz)"
        )
    slope, _ = np.polyfit(np.log(f[keep]), np.log(p[keep]), 1)
    return float(slope)


def _cells(n: int, bounds: tuple[float, float]) -> np.ndarray:
    """Edges [n+1] of n equal cells splitting [low, high]."""
    if n < 1 or not bounds[0] < bounds[1]:
        raise ValueError(f"need n >= 1 cells of a range low < high, got {n}, {bounds}")
    return np.linspace(bounds[0], bounds[1], n + 1)


def _freeze(obj: object) -> None:
    """Turn list fields (as YAML gives them) into tuples, so class sets stay hashable."""
    for f in fields(obj):  # type: ignore[arg-type]
        if isinstance(getattr(obj, f.name), list):
            object.__setattr__(obj, f.name, tuple(getattr(obj, f.name)))


def _check_class(dataset: FormulaDataset, class_index: int) -> None:
    if not 0 <= class_index < dataset.n_classes:
        raise IndexError(f"class {class_index} outside [0, {dataset.n_classes})")


@dataclass(frozen=True)
class D1:
    """D1: one class per β cell (METHODS §4).

    [beta_range] is split into ``n_betas`` equal cells; a clip of class c has β drawn uniformly
    in cell c (``jitter``; else β is the cell's centre), so classes tile the range without
    overlap. Default: 16 cells of width 0.25 over [−2, 2].
    """

    n_betas: int = 16
    beta_range: tuple[float, float] = (-2.0, 2.0)
    jitter: bool = True

    def __post_init__(self) -> None:
        _freeze(self)

    @property
    def n_classes(self) -> int:
        return self.n_betas

    @cached_property
    def edges(self) -> np.ndarray:
        """β cell edges [n_betas + 1]."""
        return _cells(self.n_betas, self.beta_range)

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        mid = (self.edges[:-1] + self.edges[1:]) / 2
        return tuple(f"d1/beta{b:+.3f}" for b in mid)

    def beta(self, class_index: int, rng: np.random.Generator) -> float:
        """β of one clip of ``class_index``."""
        lo, hi = self.edges[class_index], self.edges[class_index + 1]
        return float(rng.uniform(lo, hi)) if self.jitter else float((lo + hi) / 2)

    def sample(self, class_index: int, rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
        """A clip of class ``class_index``: float32 [n_samples], unit RMS."""
        _check_class(self, class_index)
        return power_law_noise(n_samples, self.beta(class_index, rng), rng, sample_rate)


@dataclass(frozen=True)
class D2:
    """D2: β cell × spectral band (METHODS §4): ``n_betas · n_bands`` classes, β-major.

    β is drawn as in D1 (cells over ``beta_range``). The bands split [band_range_hz] into
    ``n_bands`` log-spaced bands (default 50–8000 Hz in 6 bands of ≈1.2 octaves); a clip's band
    is its class's band shifted by up to ±``band_jitter`` of a band width (in log frequency),
    shaped by ``band_gain``: flat inside, a raised-cosine roll-off over ``rolloff_octaves``
    outside. With the defaults a clip's own band always holds the largest share of its energy
    (at least about half, even for β = −2, which tilts energy to the band's top). The top band
    must start below Nyquist: with the defaults, rates above 6.9 kHz (16 kHz keeps it whole).
    """

    n_betas: int = 4
    n_bands: int = 6
    beta_range: tuple[float, float] = (-2.0, 2.0)
    band_range_hz: tuple[float, float] = (50.0, 8000.0)
    band_jitter: float = 0.15
    rolloff_octaves: float = 0.25
    jitter: bool = True

    def __post_init__(self) -> None:
        _freeze(self)

    @property
    def n_classes(self) -> int:
        return self.n_betas * self.n_bands

    @cached_property
    def betas(self) -> D1:
        return D1(self.n_betas, self.beta_range, self.jitter)

    @cached_property
    def band_edges(self) -> np.ndarray:
        """Band edges in Hz [n_bands + 1], log-spaced."""
        lo, hi = self.band_range_hz
        return np.exp(_cells(self.n_bands, (float(np.log(lo)), float(np.log(hi)))))

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        mid = (self.betas.edges[:-1] + self.betas.edges[1:]) / 2
        return tuple(
            f"d2/beta{b:+.2f}/band{self.band_edges[k]:.0f}-{self.band_edges[k + 1]:.0f}"
            for b in mid
            for k in range(self.n_bands)
        )

    def band(self, class_index: int, rng: np.random.Generator) -> tuple[float, float]:
        """The (jittered) band in Hz of one clip of ``class_index``."""
        k = class_index % self.n_bands
        lo, hi = self.band_edges[k], self.band_edges[k + 1]
        shift = (hi / lo) ** (self.band_jitter * rng.uniform(-1.0, 1.0)) if self.jitter else 1.0
        return float(lo * shift), float(hi * shift)

    def sample(self, class_index: int, rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
        """A clip of class ``class_index``: float32 [n_samples], unit RMS."""
        _check_class(self, class_index)
        if self.band_edges[-2] >= sample_rate / 2:
            raise ValueError(
                f"D2's top band starts at {self.band_edges[-2]:.0f} Hz, above "
                f"Nyquist at {sample_rate} Hz; lower band_range_hz"
            )
        beta = self.betas.beta(class_index // self.n_bands, rng)
        return band_noise(n_samples, beta, self.band(class_index, rng), rng, sample_rate, self.rolloff_octaves)


def drifting_noise(
    n_samples: int,
    beta_at: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    sample_rate: int = 16000,
    frame_seconds: float = 0.064,
) -> np.ndarray:
    """Colored noise whose β follows a course over the clip: float32 [n_samples], unit RMS.

    ``beta_at(u)`` gives β at clip fractions u ∈ [0, 1]. Synthesis is overlap-add of
    independent frames of ≈``frame_seconds`` (a power of two, sine window, 50% hop, so the
    variance is constant in time): frame k is white complex noise shaped by f^(−β(u_k)/2) and
    normalised to unit mean power gain, so that loudness does not move with β (in D3 the
    envelopes, not β, say how loud a clip is).
    """
    frame = max(64, int(2 ** round(np.log2(frame_seconds * sample_rate))))
    frame = min(frame, max(2, n_samples - n_samples % 2))
    hop = frame // 2
    n_frames = -(-n_samples // hop) + 1
    # Frame k covers [k·hop, k·hop + frame) of a buffer whose sample `hop` is the clip's first
    # (so its centre is clip sample k·hop): every clip sample lies under two frames, whose
    # squared windows sin² + cos² sum to 1.
    centres = np.clip(np.arange(n_frames) * hop / max(n_samples - 1, 1), 0.0, 1.0)
    f = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    gains = _power_law_gain(f[None, :], np.asarray(beta_at(centres), dtype=float)[:, None])
    gains /= np.sqrt(np.mean(gains**2, axis=1, keepdims=True))
    white = rng.standard_normal((n_frames, f.size)) + 1j * rng.standard_normal((n_frames, f.size))
    frames = np.fft.irfft(white * gains, frame, axis=1)
    frames *= np.sin(np.pi * (np.arange(frame) + 0.5) / frame)
    out = np.zeros((n_frames + 1) * hop)
    for k in range(n_frames):
        out[k * hop : k * hop + frame] += frames[k]
    return _unit_rms(out[hop : hop + n_samples])


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _steady(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    beta = rng.uniform(-2.0, 2.0)
    return lambda u: np.full(np.shape(u), beta)


def _linear(rising: bool) -> Callable[[np.random.Generator], Callable]:
    def draw(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
        low, high = rng.uniform(-2.0, -0.5), rng.uniform(0.5, 2.0)
        a, b = (low, high) if rising else (high, low)
        return lambda u: a + (b - a) * np.asarray(u)

    return draw


def _swing(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    centre, depth = rng.uniform(-0.5, 0.5), rng.uniform(0.75, 1.25)
    cycles, phase = rng.uniform(1.0, 3.0), rng.uniform(0.0, 2 * np.pi)
    return lambda u: np.clip(centre + depth * np.sin(2 * np.pi * cycles * np.asarray(u) + phase), -2.0, 2.0)


# D3 drift patterns: name -> draw(rng) -> β(u) over clip fraction u (see D3's docstring).
DRIFTS: dict[str, Callable[[np.random.Generator], Callable[[np.ndarray], np.ndarray]]] = {
    "steady": _steady,
    "rise": _linear(True),
    "fall": _linear(False),
    "swing": _swing,
}


def _flat(rng: np.random.Generator, t: np.ndarray, duration: float) -> np.ndarray:
    return np.ones_like(t)


def _bursts(rng: np.random.Generator, t: np.ndarray, duration: float) -> np.ndarray:
    rate, tau = _log_uniform(rng, 1.0, 8.0), _log_uniform(rng, 0.01, 0.15)
    onset = rng.uniform(0.0, min(1.0 / rate, 0.5 * duration))
    env = np.zeros_like(t)
    while onset < duration:
        after = t >= onset
        env[after] = np.maximum(env[after], np.exp(-(t[after] - onset) / tau))
        onset += rng.uniform(0.7, 1.3) / rate
    return env


def _am(rng: np.random.Generator, t: np.ndarray, duration: float) -> np.ndarray:
    rate, depth = _log_uniform(rng, 2.0, 16.0), rng.uniform(0.6, 1.0)
    return (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))) / (1 + depth)


def _swell(rng: np.random.Generator, t: np.ndarray, duration: float) -> np.ndarray:
    cycles, phase = rng.uniform(1.0, 2.5), rng.uniform(0.0, 1.0)
    return 0.05 + 0.475 * (1 - np.cos(2 * np.pi * (cycles * t / duration + phase)))


# D3 envelope types: name -> envelope(rng, t seconds [n], duration s) in [0, 1] [n].
ENVELOPES: dict[str, Callable[[np.random.Generator, np.ndarray, float], np.ndarray]] = {
    "flat": _flat,
    "bursts": _bursts,
    "am": _am,
    "swell": _swell,
}


@dataclass(frozen=True)
class D3:
    """D3: time-varying noise, drift pattern × envelope type (METHODS §4), drift-major.

    Drift patterns (β over the clip, synthesised by ``drifting_noise``):
      steady — constant β ~ U(−2, 2);
      rise — linear from β_a ~ U(−2, −0.5) to β_b ~ U(0.5, 2) (the sound darkens);
      fall — the same, reversed (it brightens);
      swing — β = c + a·sin(2π·k·u + φ), c ~ U(−0.5, 0.5), a ~ U(0.75, 1.25),
              k ~ U(1, 3) cycles per clip, clipped to [−2, 2].
    Envelope types (amplitude over time, applied after synthesis):
      flat — constant;
      bursts — decaying bursts exp(−t/τ), τ ~ logU(10, 150) ms, at quasi-regular onsets
               with rate ~ logU(1, 8) /s (±30% jitter per interval);
      am — (1 + m·sin(2π f_m t + φ))/(1 + m), f_m ~ logU(2, 16) Hz, m ~ U(0.6, 1);
      swell — raised-cosine swells, 1–2.5 per clip, over a floor of 0.05.
    Default: 4 × 4 = 16 classes.
    """

    drifts: tuple[str, ...] = ("steady", "rise", "fall", "swing")
    envelopes: tuple[str, ...] = ("flat", "bursts", "am", "swell")
    frame_seconds: float = 0.064

    def __post_init__(self) -> None:
        _freeze(self)
        unknown = sorted(set(self.drifts) - set(DRIFTS)) + sorted(set(self.envelopes) - set(ENVELOPES))
        if unknown:
            raise ValueError(f"unknown D3 drifts/envelopes {unknown}; known: {sorted(DRIFTS)}, {sorted(ENVELOPES)}")

    @property
    def n_classes(self) -> int:
        return len(self.drifts) * len(self.envelopes)

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        return tuple(f"d3/{d}/{e}" for d in self.drifts for e in self.envelopes)

    def sample(self, class_index: int, rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
        """A clip of class ``class_index``: float32 [n_samples], unit RMS."""
        _check_class(self, class_index)
        drift = DRIFTS[self.drifts[class_index // len(self.envelopes)]](rng)
        envelope = ENVELOPES[self.envelopes[class_index % len(self.envelopes)]]
        x = drifting_noise(n_samples, drift, rng, sample_rate, self.frame_seconds)
        t = np.arange(n_samples) / sample_rate
        # The −60 dB floor keeps the gaps between bursts from being digital silence.
        gain = np.maximum(envelope(rng, t, n_samples / sample_rate), 1e-3)
        return _unit_rms(x * gain)


@dataclass(frozen=True)
class DALL:
    """The union of class sets (default D1, D2, D3: 16 + 24 + 16 = 56 classes, METHODS §4).

    Class indices are offset: part p's classes follow those of parts 0..p−1.
    """

    parts: tuple[FormulaDataset, ...] = (D1(), D2(), D3())

    @cached_property
    def offsets(self) -> np.ndarray:
        """First class index of each part [len(parts) + 1] (the last is n_classes)."""
        return np.cumsum([0, *(p.n_classes for p in self.parts)])

    @property
    def n_classes(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        return tuple(name for p in self.parts for name in p.class_names)

    def sample(self, class_index: int, rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
        """A clip of union class ``class_index``: float32 [n_samples], unit RMS."""
        _check_class(self, class_index)
        part = int(np.searchsorted(self.offsets, class_index, side="right")) - 1
        return self.parts[part].sample(class_index - int(self.offsets[part]), rng, n_samples, sample_rate)


# Recipes name a class set by key and pass its section as constructor arguments.
FORMULA_DATASETS: dict[str, type] = {"d1": D1, "d2": D2, "d3": D3, "all": DALL}


def build_class_set(dataset: str = "all", **params: Any) -> FormulaDataset:
    """The class set ``dataset`` (a ``FORMULA_DATASETS`` key) built with ``params`` as its
    constructor arguments: what a sound recipe's ``data.formula`` section asks for."""
    try:
        cls = FORMULA_DATASETS[dataset]
    except KeyError:
        raise ValueError(f"unknown formula dataset {dataset!r}; known: {sorted(FORMULA_DATASETS)}") from None
    return cls(**params)
