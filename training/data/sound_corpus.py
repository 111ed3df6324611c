"""A deterministic synthetic environmental-sound corpus, built offline (DESIGN §4).

Twelve classes of everyday sounds are synthesised with numpy/scipy — each a small generator in
``SOUND_CLASSES`` that draws its own pitch, rate and envelope per clip — then placed in a room
(SoX reverb, half of the clips) and in background noise (white/pink/brown, SNR 10–35 dB), at a
random level. It stands in for ESC-50 / UrbanSound8K where those are not present (tests,
CPU smoke runs of METHODS §4's fine-tuning protocol), with the same shape: one folder per
class, fixed-length clips, class-balanced folds. Builds follow training.data.speech_corpus:
one job per class in a process pool, a shard manifest per finished class so that an
interrupted build resumes, and build.json so that a finished one is not redone.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from training.data.channel_effects import NOISE_COLORS, Reverb, add_noise, require_tool, reverberate, write_wav
from training.data.manifest import ManifestRecord, read_manifest, write_manifest
from training.data.speech_corpus import _finish_build, _write_json

_BUILD_VERSION = 1
SNR_DB = (10.0, 35.0)  # background noise, power ratio over the whole clip
LEVEL_RMS = (0.02, 0.2)  # log-uniform clip level
REVERB_P = 0.5


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _filter(
    x: np.ndarray, sample_rate: int, btype: str, cutoff: float | tuple[float, float], order: int = 2
) -> np.ndarray:
    """Butterworth low/high/band-pass (cut-offs in Hz, kept below Nyquist)."""
    from scipy.signal import butter, sosfilt

    nyquist = 0.45 * sample_rate
    cut = np.minimum(np.asarray(cutoff, dtype=float), nyquist)
    return sosfilt(butter(order, cut, btype=btype, fs=sample_rate, output="sos"), x)


def _onsets(rng: np.random.Generator, duration: float, rate: float, jitter: float) -> np.ndarray:
    """Quasi-regular event times (s) in [0, duration): intervals (1 ± jitter)/rate."""
    times = [rng.uniform(0.0, min(1.0 / rate, 0.5 * duration))]
    while times[-1] < duration:
        times.append(times[-1] + rng.uniform(1 - jitter, 1 + jitter) / rate)
    return np.array(times[:-1])


def _place(out: np.ndarray, event: np.ndarray, start_s: float, sample_rate: int, gain: float = 1.0) -> None:
    """Add ``event`` into ``out`` at ``start_s`` seconds (truncated at the end), in place."""
    i = int(start_s * sample_rate)
    if 0 <= i < out.size:
        m = min(event.size, out.size - i)
        out[i : i + m] += gain * event[:m]


def _decay(sample_rate: int, tau: float, length: float | None = None) -> np.ndarray:
    """exp(−t/τ) over ``length`` seconds (default 6τ, −52 dB)."""
    return np.exp(-np.arange(int((length or 6 * tau) * sample_rate)) / (tau * sample_rate))


def _tone(freqs: np.ndarray, sample_rate: int, harmonics: np.ndarray | None = None, phase: float = 0.0) -> np.ndarray:
    """Sum of harmonics (amplitudes ``harmonics``, default [1]) of an instantaneous frequency
    track ``freqs`` [n] Hz; harmonics above Nyquist are left out."""
    harmonics = np.ones(1) if harmonics is None else harmonics
    phi = phase + 2 * np.pi * np.cumsum(freqs) / sample_rate
    out = np.zeros(freqs.size)
    for k, a in enumerate(harmonics, start=1):
        if k * float(np.max(freqs)) < 0.45 * sample_rate:
            out += a * np.sin(k * phi)
    return out


def _smooth_random(rng: np.random.Generator, n: int, sample_rate: int, rate_hz: float) -> np.ndarray:
    """A slow random curve [n] in about [−1, 1]: cosine-interpolated knots every 1/rate_hz s."""
    n_knots = int(n / sample_rate * rate_hz) + 2
    knots = rng.uniform(-1.0, 1.0, n_knots)
    u = np.arange(n) / sample_rate * rate_hz
    i = np.minimum(u.astype(int), n_knots - 2)
    w = 0.5 - 0.5 * np.cos(np.pi * (u - i))
    return knots[i] * (1 - w) + knots[i + 1] * w


SoundGenerator = Callable[[np.random.Generator, int, int], np.ndarray]


def rain(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Dense random drop clicks (150–1500 /s) over band-passed hiss."""
    rate = _log_uniform(rng, 150.0, 1500.0)
    clicks = (rng.random(n) < rate / sr) * rng.lognormal(0.0, 0.7, n)
    drops = _filter(clicks, sr, "bandpass", (rng.uniform(800, 2000), rng.uniform(5000, 9000)))
    hiss = _filter(rng.standard_normal(n), sr, "bandpass", (rng.uniform(300, 800), 7000.0))
    return drops / (np.std(drops) + 1e-12) + rng.uniform(0.2, 1.0) * hiss / np.std(hiss)


def wind(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Low-passed noise in slow gusts (0.2–1 Hz), with a faint resonant whistle."""
    gust = 0.55 + 0.45 * _smooth_random(rng, n, sr, rng.uniform(0.2, 1.0))
    rumble = _filter(rng.standard_normal(n), sr, "lowpass", rng.uniform(150, 700))
    whistle = _filter(rng.standard_normal(n), sr, "bandpass", tuple(rng.uniform(300, 1200) * np.array([0.95, 1.05])))
    return gust * (rumble / np.std(rumble) + rng.uniform(0.0, 0.5) * whistle / np.std(whistle))


def engine(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Running engine: firing pulses at 25–90 Hz that wander ±10%, each a short exhaust burst
    ringing in a 100–400 Hz pipe resonance, with valve-train ticking (a 'putt-putt' with a
    dense harmonic spectrum)."""
    from scipy.signal import fftconvolve

    f0 = rng.uniform(25.0, 90.0) * (1 + 0.1 * _smooth_random(rng, n, sr, rng.uniform(0.2, 2)))
    cycles = np.floor(np.cumsum(f0) / sr + rng.uniform())
    pulses = np.zeros(n)
    fire = np.flatnonzero(np.diff(cycles) > 0) + 1
    pulses[fire] = rng.uniform(0.5, 1.0, fire.size)  # uneven cylinders
    burst = _decay(sr, rng.uniform(0.002, 0.006))
    burst *= rng.standard_normal(burst.size)
    exhaust = fftconvolve(pulses, burst)[:n]
    pipe = _filter(exhaust, sr, "bandpass", tuple(rng.uniform(100, 400) * np.array([0.8, 1.25])))
    ticks = _filter(exhaust, sr, "highpass", 2000.0)
    return (
        pipe / np.std(pipe)
        + rng.uniform(0.1, 0.4) * ticks / np.std(ticks)
        + 0.5 * _filter(exhaust, sr, "lowpass", 1000.0) / np.std(exhaust)
    )


def siren(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Wail (0.15–0.5 Hz) or yelp (3–8 Hz) sweep of a brassy tone around 600–1100 Hz."""
    t = np.arange(n) / sr
    rate = rng.uniform(0.15, 0.5) if rng.random() < 0.5 else rng.uniform(3.0, 8.0)
    centre, dev = rng.uniform(600, 1100), rng.uniform(200, 450)
    freqs = centre + dev * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    return _tone(freqs, sr, 1.0 / np.arange(1, 6) ** rng.uniform(0.8, 1.5))


def alarm(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Electronic beeper: 1.8–3.8 kHz beeps of 50–250 ms, one or two alternating pitches."""
    beep = rng.uniform(0.05, 0.25)
    period = beep + rng.uniform(0.05, 0.5)
    pitches = rng.uniform(1800, 3800) * np.array([1.0, rng.choice([1.0, 0.8])])
    ramp = np.minimum(1.0, np.minimum(np.arange(int(beep * sr)), np.arange(int(beep * sr))[::-1]) / (0.005 * sr))
    out = np.zeros(n)
    for k, start in enumerate(np.arange(rng.uniform(0, min(period, n / sr / 2)), n / sr, period)):
        f = np.full(ramp.size, pitches[k % 2])
        _place(out, ramp * _tone(f, sr, np.array([1.0, 0.0, 0.2])), start, sr)
    return out


def hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Mains hum and transformer buzz: a 50 or 60 Hz (±0.5%) line and a saturated (odd-harmonic
    rich) buzz at twice that, steady but for a slight flicker."""
    f0 = float(rng.choice([50.0, 60.0])) * rng.uniform(0.995, 1.005)
    t = np.arange(n) / sr
    buzz = np.tanh(rng.uniform(1.0, 6.0) * np.sin(2 * np.pi * 2 * f0 * t + rng.uniform(0, 6)))
    line = rng.uniform(0.0, 1.0) * np.sin(2 * np.pi * f0 * t)
    flicker = 1 + 0.1 * _smooth_random(rng, n, sr, rng.uniform(1.0, 5.0))
    return flicker * _filter(line + buzz, sr, "lowpass", rng.uniform(1500, 4000))


def footsteps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Walking (1.4–2.4 steps/s): a low heel thud, then a scuffing toe 40–90 ms later."""
    out, scuff = np.zeros(n), rng.uniform(0.2, 1.0)
    for start in _onsets(rng, n / sr, rng.uniform(1.4, 2.4), 0.08):
        heel = _decay(sr, rng.uniform(0.02, 0.04))
        thud = heel * np.sin(2 * np.pi * rng.uniform(70, 150) * np.arange(heel.size) / sr)
        thud += _filter(heel * rng.standard_normal(heel.size), sr, "lowpass", 400.0)
        toe = _decay(sr, rng.uniform(0.03, 0.06))
        toe = _filter(toe * rng.standard_normal(toe.size), sr, "bandpass", (500.0, 3000.0))
        _place(out, thud, start, sr, rng.uniform(0.7, 1.0))
        _place(out, toe, start + rng.uniform(0.04, 0.09), sr, scuff)
    return out


def bird(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Song phrases of 3–10 chirps (8–20 /s): sine sweeps within 2–7 kHz, 20–120 ms each."""
    out, top = np.zeros(n), min(7000.0, 0.4 * sr)
    for phrase in _onsets(rng, n / sr, rng.uniform(0.5, 1.2), 0.4):
        length, rate = rng.uniform(0.02, 0.12), rng.uniform(8, 20)
        f_a, f_b = rng.uniform(2000, top, 2)
        for k in range(int(rng.integers(3, 11))):
            m = int(length * sr)
            sweep = np.linspace(f_a, f_b, m)
            _place(
                out,
                np.sin(np.pi * np.arange(m) / m) ** 2 * _tone(sweep, sr),
                phrase + k / rate,
                sr,
                rng.uniform(0.6, 1.0),
            )
    return out


def door_knock(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Groups of 2–4 knocks (0.12–0.25 s apart) on a wooden door: a click plus damped modes."""
    out = np.zeros(n)
    modes = rng.uniform(150, 600, 3)
    for group in _onsets(rng, n / sr, rng.uniform(0.4, 1.0), 0.3):
        gap = rng.uniform(0.12, 0.25)
        for k in range(int(rng.integers(2, 5))):
            env = _decay(sr, rng.uniform(0.015, 0.04))
            t = np.arange(env.size) / sr
            knock = env * np.sin(2 * np.pi * modes[:, None] * t).sum(axis=0)
            knock[: int(0.002 * sr)] += rng.standard_normal(int(0.002 * sr))
            _place(out, knock, group + k * gap, sr, rng.uniform(0.7, 1.0))
    return out


def dog_bark(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Barks of 80–250 ms with a falling 350–800 Hz pitch, harmonic and breathy, in groups."""
    out = np.zeros(n)
    formant = rng.uniform(800, 1800)
    for group in _onsets(rng, n / sr, rng.uniform(0.5, 1.2), 0.3):
        for k in range(int(rng.integers(1, 4))):
            m = int(rng.uniform(0.08, 0.25) * sr)
            f0 = rng.uniform(350, 800) * np.linspace(1.0, rng.uniform(0.6, 0.8), m)
            env = np.minimum(1.0, np.arange(m) / (0.01 * sr)) * _decay(sr, m / sr / 3)[:m]
            voiced = _tone(f0, sr, 1.0 / np.arange(1, 11)) + 0.3 * rng.standard_normal(m)
            bark = env * _filter(voiced, sr, "bandpass", (0.5 * formant, 2.5 * formant))
            _place(out, bark, group + k * rng.uniform(0.2, 0.4), sr)
    return out


def clock_tick(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Tick-tock at exactly 1 or 2 per second: 2–5 ms high-pitched clicks, alternating pitch."""
    out, f = np.zeros(n), rng.uniform(2000, 5000)
    period = float(rng.choice([0.5, 1.0]))
    tau = rng.uniform(0.002, 0.005)
    for k, start in enumerate(np.arange(rng.uniform(0, min(period, n / sr / 2)), n / sr, period)):
        env = _decay(sr, tau)
        pitch = f * (0.8 if k % 2 else 1.0)
        _place(out, env * np.sin(2 * np.pi * pitch * np.arange(env.size) / sr), start, sr)
    return out


def water_drip(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Irregular drips (0.7–3 /s): a bubble 'plop' whose 600–1800 Hz pitch rises as it dies."""
    out = np.zeros(n)
    for start in _onsets(rng, n / sr, rng.uniform(0.7, 3.0), 0.5):
        tau = rng.uniform(0.015, 0.05)
        env = _decay(sr, tau)
        rise = np.linspace(1.0, 1.0 + rng.uniform(0.3, 1.0) * env.size / sr / (6 * tau), env.size)
        _place(out, env * _tone(rng.uniform(600, 1800) * rise, sr), start, sr, rng.uniform(0.5, 1.0))
    return out


# Class name -> generator(rng, n_samples, sample_rate) -> dry float64 [n_samples], any scale.
SOUND_CLASSES: dict[str, SoundGenerator] = {
    "rain": rain,
    "wind": wind,
    "engine": engine,
    "siren": siren,
    "alarm": alarm,
    "hum": hum,
    "footsteps": footsteps,
    "bird": bird,
    "door_knock": door_knock,
    "dog_bark": dog_bark,
    "clock_tick": clock_tick,
    "water_drip": water_drip,
}


def _class_key(name: str) -> int:
    """A seed stream per class name, so that adding a class never changes the others' audio."""
    return zlib.crc32(name.encode("utf-8"))


def render_clip(
    name: str, rng: np.random.Generator, n_samples: int, sample_rate: int
) -> tuple[np.ndarray, dict[str, object]]:
    """One clip of class ``name``: float64 [n_samples] in [−1, 1], and what was drawn for it.

    The dry sound (``SOUND_CLASSES[name]``) goes through a random SoX room with probability
    ``REVERB_P``, then gets background noise of a random colour at an SNR ~ U(SNR_DB), then is
    scaled to an RMS ~ logU(LEVEL_RMS) (peak-limited to 0.99 by scaling, never clipping).
    """
    x = SOUND_CLASSES[name](rng, n_samples, sample_rate)
    peak = float(np.max(np.abs(x)))
    if not peak > 0:  # NaN or silence: a generator bug, never a clip of the class
        raise RuntimeError(f"sound class {name!r} generated no sound ({n_samples} samples)")
    x = x * (0.25 / peak)  # headroom: SoX clips its float output at ±1
    info: dict[str, object] = {"reverb": None}
    if rng.random() < REVERB_P:
        room = Reverb(
            reverberance=round(rng.uniform(20, 90)),
            hf_damping=round(rng.uniform(20, 80)),
            room_scale=round(rng.uniform(30, 100)),
            pre_delay_ms=round(rng.uniform(0, 30)),
        )
        x = reverberate(x, sample_rate, room)
        info["reverb"] = {"reverberance": room.reverberance, "room_scale": room.room_scale}
    snr, color = rng.uniform(*SNR_DB), NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))]
    x = add_noise(x, snr, color, rng, sample_rate)
    rms = float(np.sqrt(np.mean(x**2)))
    x = x * (_log_uniform(rng, *LEVEL_RMS) / rms) if rms > 0 else x
    peak = float(np.max(np.abs(x)))
    x = x * (0.99 / peak) if peak > 0.99 else x
    return x, {**info, "snr_db": round(float(snr), 2), "noise_color": color}


@dataclass(frozen=True)
class _ClassJob:
    """One class's share of a build: which clips (index, fold) to render into ``folder``."""

    name: str
    label: int
    seed: int
    sample_rate: int
    n_samples: int
    folder: Path
    clips: tuple[tuple[int, int], ...]


def _render_class(job: _ClassJob) -> list[ManifestRecord]:
    """Render a job's clips and its shard manifest, or read back a finished shard."""
    shard = job.folder / "clips.jsonl"
    if shard.exists():
        return read_manifest(shard)
    records = []
    for j, fold in job.clips:
        rng = np.random.default_rng(np.random.SeedSequence([job.seed, _class_key(job.name), 0, j]))
        x, info = render_clip(job.name, rng, job.n_samples, job.sample_rate)
        path = write_wav(job.folder / f"{job.name}_{j:04d}.wav", x, job.sample_rate)
        records.append(
            ManifestRecord(
                path=path,
                identity=job.name,
                duration=job.n_samples / job.sample_rate,
                split=f"fold{fold}",
                extra={"fold": fold, "label": job.label, "sample_rate": job.sample_rate, **info},
            )
        )
    write_manifest(shard, records)
    return records


@functools.cache
def sox_version() -> str:
    """SoX's version line; recorded in build.json because the reverberated audio depends on it."""
    sox = require_tool("sox", "sox")
    return subprocess.run([sox, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def _start_build(out_dir: Path, args: dict) -> bool:
    """True when ``out_dir`` holds a finished build of ``args``; else stamp it unfinished,
    first deleting the outputs of a build with other arguments (as speech_corpus does)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = out_dir / "build.json"
    args = {**args, "builder_version": _BUILD_VERSION, "sox": sox_version()}
    if stamp.exists():
        old = json.loads(stamp.read_text(encoding="utf-8"))
        if old.get("args") == args:
            return bool(old.get("complete")) and (out_dir / "manifest.jsonl").exists()
        shutil.rmtree(out_dir / "audio", ignore_errors=True)
        (out_dir / "manifest.jsonl").unlink(missing_ok=True)
    elif (out_dir / "audio").exists():
        raise FileExistsError(
            f"{out_dir} has an audio/ folder but no build.json, so it was not "
            f"made by this builder; choose an empty folder or remove it"
        )
    _write_json(stamp, {"args": args, "complete": False})
    return False


def fold_assignment(n_clips: int, n_folds: int, label: int, rng: np.random.Generator) -> np.ndarray:
    """Folds 1..n_folds [n_clips] for one class: counts differ by at most one, clips shuffled;
    the folds that get an extra clip rotate with ``label`` so that folds stay balanced overall."""
    return 1 + (rng.permutation(n_clips) + label) % n_folds


class SoundCorpusSettings(TypedDict):
    """The arguments of :func:`build_sound_corpus` that fix a corpus (a calibration or parity set)."""

    clips_per_class: int
    clip_seconds: float
    n_folds: int
    seed: int


def build_sound_corpus(
    out_dir: str | os.PathLike[str],
    clips_per_class: int = 40,
    clip_seconds: float = 5.0,
    sample_rate: int = 16000,
    n_folds: int = 5,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    classes: tuple[str, ...] | None = None,
) -> Path:
    """Build ``out_dir/audio/<class>/<class>_<j>.wav`` and ``out_dir/manifest.jsonl``.

    classes: names from ``SOUND_CLASSES`` (default all 12, in registry order); label = position.
    Every record: identity = class name, duration = clip_seconds, split "fold<k>", extras
    ``fold`` (1..n_folds, balanced per class by ``fold_assignment``), ``label``,
    ``sample_rate``, ``reverb``, ``snr_db``, ``noise_color``. ``workers`` processes (None: all
    CPUs) render one class each at a time. Clip j of a class is seeded by (seed, class, j) and
    the same arguments give the same bytes; a rerun returns at once, an interrupted build
    resumes, other arguments rebuild from scratch. Returns the manifest path.
    """
    out_dir = Path(out_dir).resolve()
    classes = tuple(SOUND_CLASSES) if classes is None else tuple(classes)
    unknown = sorted(set(classes) - set(SOUND_CLASSES))
    if unknown or not classes or clips_per_class < 1 or n_folds < 1:
        raise ValueError(
            f"need known classes {sorted(SOUND_CLASSES)} (unknown: {unknown}), clips_per_class >= 1 and n_folds >= 1"
        )
    args = {
        "kind": "sound_corpus",
        "classes": list(classes),
        "clips_per_class": clips_per_class,
        "clip_seconds": clip_seconds,
        "sample_rate": sample_rate,
        "n_folds": n_folds,
        "seed": seed,
    }
    manifest = out_dir / "manifest.jsonl"
    if _start_build(out_dir, args):
        return manifest
    n_samples = max(1, round(clip_seconds * sample_rate))
    jobs = []
    for label, name in enumerate(classes):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _class_key(name), 1]))
        folds = fold_assignment(clips_per_class, n_folds, label, rng)
        jobs.append(
            _ClassJob(
                name,
                label,
                seed,
                sample_rate,
                n_samples,
                out_dir / "audio" / name,
                tuple(enumerate(int(f) for f in folds)),
            )
        )
    workers = min((os.cpu_count() or 1) if workers is None else workers, len(jobs))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            records = _collect(pool.map(_render_class, jobs), len(jobs), progress)
    else:
        records = _collect(map(_render_class, jobs), len(jobs), progress)
    write_manifest(manifest, records)
    _finish_build(out_dir, classes=list(classes))
    return manifest


def _collect(results: Iterator[list[ManifestRecord]], total: int, progress: bool) -> list[ManifestRecord]:
    """Concatenate the jobs' records in job order, with a progress bar over classes."""
    from tqdm import tqdm

    records: list[ManifestRecord] = []
    for result in tqdm(results, total=total, desc="sound corpus", unit="class", disable=not progress):
        records += result
    return records
