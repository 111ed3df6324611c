"""Channel effects for synthetic corpora: telephone band, additive noise, reverb, gain.

Band limiting, resampling, mu-law and reverb run in SoX (called with explicit arguments, no
shell, audio piped as raw float32 so that no temporary files are needed); noise is generated
with numpy from the caller's seed. The stages of an effect always run in the physical order
room (reverb) → ambient noise → channel (telephone band, mu-law) → level (gain), so that
"telephone+noise" is a noisy room heard over a phone line. Same input + effect + seed gives the
same output bytes (SoX runs with ``-R``, repeatable mode).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOISE_COLORS = ("white", "pink", "brown")


def require_tool(name: str, debian_package: str) -> str:
    """Absolute path of executable ``name``, or a RuntimeError saying what to install."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"`{name}` was not found on PATH; it is needed to build synthetic "
            f"corpora. Install the Debian package `{debian_package}` "
            f"(apt-get install {debian_package})."
        )
    return found


@dataclass(frozen=True)
class Reverb:
    """Parameters of SoX's ``reverb`` effect (freeverb): percentages, milliseconds, dB."""

    reverberance: float = 50.0
    hf_damping: float = 50.0
    room_scale: float = 100.0
    pre_delay_ms: float = 0.0
    wet_gain_db: float = 0.0


@dataclass(frozen=True)
class ChannelEffect:
    """A named channel: each stage is off unless its parameter is set.

    reverb: room reverberation (SoX ``reverb``).
    noise_snr_db: additive noise at this SNR, measured over the whole signal (power ratio).
    noise_color: "white", "pink" (1/f power) or "brown" (1/f² power).
    telephone: resample to 8 kHz, band-pass 300–3400 Hz, back to the input rate.
    mulaw: with ``telephone``, pass the 8 kHz signal through 8-bit G.711 mu-law.
    gain_db: level change applied last; the result is clipped to [-1, 1] like a real ADC.
    """

    name: str
    reverb: Reverb | None = None
    noise_snr_db: float | None = None
    noise_color: str = "white"
    telephone: bool = False
    mulaw: bool = True
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if self.noise_color not in NOISE_COLORS:
            raise ValueError(f"noise_color must be one of {NOISE_COLORS}, got {self.noise_color!r}")


_ROOM = Reverb(reverberance=50.0, hf_damping=50.0, room_scale=70.0)
_HALL = Reverb(reverberance=80.0, hf_damping=30.0, room_scale=100.0, pre_delay_ms=20.0)

# Named presets; a plain dict so that recipes and callers can add their own.
PRESETS: dict[str, ChannelEffect] = {
    "clean": ChannelEffect("clean"),
    "telephone": ChannelEffect("telephone", telephone=True),
    "noise_snr0": ChannelEffect("noise_snr0", noise_snr_db=0.0),
    "noise_snr5": ChannelEffect("noise_snr5", noise_snr_db=5.0),
    "noise_snr10": ChannelEffect("noise_snr10", noise_snr_db=10.0),
    "noise_snr20": ChannelEffect("noise_snr20", noise_snr_db=20.0),
    "pink_noise_snr10": ChannelEffect("pink_noise_snr10", noise_snr_db=10.0, noise_color="pink"),
    "brown_noise_snr10": ChannelEffect("brown_noise_snr10", noise_snr_db=10.0, noise_color="brown"),
    "reverb": ChannelEffect("reverb", reverb=_ROOM),
    "reverb_large": ChannelEffect("reverb_large", reverb=_HALL),
    "telephone+noise": ChannelEffect("telephone+noise", noise_snr_db=15.0, noise_color="pink", telephone=True),
    "reverb+noise": ChannelEffect("reverb+noise", reverb=_ROOM, noise_snr_db=15.0, noise_color="pink"),
    "quiet": ChannelEffect("quiet", gain_db=-20.0),
}


def get_effect(effect: ChannelEffect | str) -> ChannelEffect:
    """Resolve a preset name to its ChannelEffect (ChannelEffects pass through)."""
    if isinstance(effect, ChannelEffect):
        return effect
    try:
        return PRESETS[effect]
    except KeyError:
        raise KeyError(f"unknown channel effect {effect!r}; presets: {sorted(PRESETS)}") from None


def _sox(data: bytes, in_fmt: list[str], out_fmt: list[str], effects: list[str]) -> bytes:
    """Run ``sox -R -D <in_fmt> - <out_fmt> - <effects>`` on ``data`` and return stdout."""
    sox = require_tool("sox", "sox")
    # -R: repeatable (seeded) mode; -D: no dither, as we only ever write float or mu-law.
    cmd = [sox, "-R", "-D", "-V1", *in_fmt, "-", *out_fmt, "-", *effects]
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"sox failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout


def _f32(rate: int) -> list[str]:
    return ["-t", "f32", "-e", "floating-point", "-r", str(rate), "-c", "1"]


def _sox_f32(x: np.ndarray, sample_rate: int, effects: list[str]) -> np.ndarray:
    out = _sox(np.asarray(x, dtype="<f4").tobytes(), _f32(sample_rate), _f32(sample_rate), effects)
    return np.frombuffer(out, dtype="<f4").astype(np.float64)


def colored_noise(n: int, color: str, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """Unit-RMS noise [n]: white, pink (power ∝ 1/f) or brown (power ∝ 1/f²).

    Pink and brown have nothing below 20 Hz: a 1/f² spectrum otherwise puts most of its power
    in inaudible rumble, and an SNR measured on that would mean little.
    """
    white = rng.standard_normal(n)
    if color == "white" or n < 2:
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1.0 / sample_rate)
        exponent = {"pink": 0.5, "brown": 1.0}[color]
        audible = f >= 20.0
        spectrum[audible] /= (f[audible] / 20.0) ** exponent
        spectrum[~audible] = 0.0
        noise = np.fft.irfft(spectrum, n)
    rms = np.sqrt(np.mean(noise**2))
    return noise / rms if rms > 0 else noise


def add_noise(
    x: np.ndarray, snr_db: float, color: str, rng: np.random.Generator, sample_rate: int = 16000
) -> np.ndarray:
    """x + noise scaled so that 10·log10(mean(x²)/mean(noise²)) == snr_db (silent x: unchanged)."""
    power = float(np.mean(np.square(x))) if x.size else 0.0
    if power == 0.0:
        return x.copy()
    noise = colored_noise(x.size, color, rng, sample_rate)
    return x + noise * np.sqrt(power / 10.0 ** (snr_db / 10.0))


def telephone_band(x: np.ndarray, sample_rate: int, mulaw: bool) -> np.ndarray:
    """Narrow-band telephone channel: 8 kHz, 300–3400 Hz, optional 8-bit mu-law; same length."""
    band = ["rate", "8000", "sinc", "300-3400"]
    if not mulaw:
        y = _sox_f32(x, sample_rate, [*band, "rate", str(sample_rate)])
    else:
        ulaw = ["-t", "raw", "-e", "u-law", "-b", "8", "-r", "8000", "-c", "1"]
        # mu-law headroom: the encoder clips at full scale, so keep the peak below it.
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        scale = 0.9 / peak if peak > 0.9 else 1.0
        coded = _sox(np.asarray(x * scale, dtype="<f4").tobytes(), _f32(sample_rate), ulaw, band)
        out = _sox(coded, ulaw, _f32(sample_rate), ["rate", str(sample_rate)])
        y = np.frombuffer(out, dtype="<f4").astype(np.float64) / scale
    return _fit_length(y, x.size)


def reverberate(x: np.ndarray, sample_rate: int, reverb: Reverb) -> np.ndarray:
    """Room reverberation with SoX ``reverb`` (wet + dry, same length as x)."""
    args = [reverb.reverberance, reverb.hf_damping, reverb.room_scale, 100.0, reverb.pre_delay_ms, reverb.wet_gain_db]
    return _fit_length(_sox_f32(x, sample_rate, ["reverb", *[f"{a:g}" for a in args]]), x.size)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    # Resampling round trips can be a sample off; callers rely on lengths being preserved.
    return y[:n] if y.size >= n else np.pad(y, (0, n - y.size))


def apply_effect_array(x: np.ndarray, sample_rate: int, effect: ChannelEffect | str, seed: int) -> np.ndarray:
    """Apply ``effect`` to mono float audio ``x`` [samples] at ``sample_rate`` Hz.

    Returns float64 [samples] (same length), peak-limited to avoid wrap-around on PCM writes.
    """
    effect = get_effect(effect)
    y = np.asarray(x, dtype=np.float64)
    if effect.reverb is not None:
        y = reverberate(y, sample_rate, effect.reverb)
    if effect.noise_snr_db is not None:
        rng = np.random.default_rng(seed)
        y = add_noise(y, effect.noise_snr_db, effect.noise_color, rng, sample_rate)
    if effect.telephone:
        y = telephone_band(y, sample_rate, effect.mulaw)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.99:  # headroom lost to reverb/noise: scale (keeps SNR) rather than clip
        y = y * (0.99 / peak)
    if effect.gain_db:
        y = np.clip(y * 10.0 ** (effect.gain_db / 20.0), -1.0, 1.0)
    return y


def write_wav(path: str | os.PathLike[str], x: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio [samples] as 16-bit PCM WAV, atomically (temp file + rename)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read audio as mono float64 [samples] and its sample rate (channels are averaged)."""
    import soundfile as sf

    x, sample_rate = sf.read(str(path), dtype="float64", always_2d=True)
    return x.mean(axis=1), int(sample_rate)


def apply_effect(
    in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], effect: ChannelEffect | str, seed: int
) -> Path:
    """Read ``in_path``, apply ``effect`` (a ChannelEffect or preset name), write ``out_path``.

    The output keeps the input's sample rate and length, as mono 16-bit PCM WAV.
    """
    x, sample_rate = read_wav(in_path)
    return write_wav(out_path, apply_effect_array(x, sample_rate, effect, seed), sample_rate)
