"""Sound clips under the conditions of real use: pitch and tempo, room, noise, band limit.

Issue 12 found that a sound model calibrated on the generated corpus as it stands (reverb and
mild noise only) accepted 18% of real known-class probes: real recordings differ in source
(pitch, tempo: another dog, another phone), room, noise and microphone / line (telephone band,
cheap low-passing microphones). :class:`RealUse` draws all of these per clip, in the physical
order source → room → ambient noise → channel, with SoX for pitch, tempo, reverb and band limits
(``training.data.channel_effects``) and numpy for noise. ``build_real_use_corpus`` renders a
corpus of any generator registry (``sound_corpus.SOUND_CLASSES`` for training and the
calibration dev set, ``heldout_sounds.HELDOUT_CLASSES`` for the transfer bench) through it, in
sound_corpus's layout (folders per class, class-balanced folds, manifest with what was drawn).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.data.channel_effects import (
    NOISE_COLORS,
    Reverb,
    _fit_length,
    _sox_f32,
    add_noise,
    reverberate,
    telephone_band,
    write_wav,
)
from training.data.manifest import ManifestRecord, read_manifest, write_manifest
from training.data.sound_corpus import (
    LEVEL_RMS,
    SoundGenerator,
    _class_key,
    _collect,
    _log_uniform,
    _start_build,
    fold_assignment,
)
from training.data.speech_corpus import _finish_build


@dataclass(frozen=True)
class RealUse:
    """Per-clip probabilities and ranges of the real-use conditions (all drawn uniformly).

    pitch_cents: SoX ``pitch`` shift (tempo kept); tempo: SoX ``tempo`` factor (pitch kept);
    reverb: SoX ``reverb`` with reverberance / room scale in these ranges; snr_db: background
    noise of a random colour; band: telephone (8 kHz, 300–3400 Hz, half of them mu-law) with
    probability ``telephone_share``, else a low-pass at ``lowpass_hz`` (a small microphone).
    """

    pitch_p: float = 0.5
    pitch_cents: tuple[float, float] = (-400.0, 400.0)
    tempo_p: float = 0.5
    tempo: tuple[float, float] = (0.8, 1.25)
    reverb_p: float = 0.6
    reverberance: tuple[float, float] = (20.0, 90.0)
    room_scale: tuple[float, float] = (30.0, 100.0)
    noise_p: float = 0.9
    snr_db: tuple[float, float] = (0.0, 25.0)
    band_p: float = 0.5
    telephone_share: float = 0.5
    lowpass_hz: tuple[float, float] = (2000.0, 5000.0)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # YAML lists → tuples (hashable, immutable)
                object.__setattr__(self, f.name, tuple(value))
                value = tuple(value)
            if f.name.endswith("_p") or f.name == "telephone_share":
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"real_use.{f.name} must be in [0, 1], got {value}")
            elif value[0] > value[1]:
                raise ValueError(f"real_use.{f.name} must be (low, high), got {value}")
        if self.tempo[0] <= 0:
            raise ValueError(f"real_use.tempo must be positive, got {self.tempo}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> RealUse:
        """These fields over the defaults; unknown keys are errors."""
        section = dict(section or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown real_use keys {unknown}; known: {sorted(known)}")
        return cls(**section)

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """The conditions of one clip: a key per condition, None where it is off."""

        def pick(p: float, bounds: tuple[float, float]) -> float | None:
            return float(rng.uniform(*bounds)) if rng.random() < p else None

        pitch, tempo = pick(self.pitch_p, self.pitch_cents), pick(self.tempo_p, self.tempo)
        reverb = None
        if rng.random() < self.reverb_p:
            reverb = {
                "reverberance": float(rng.uniform(*self.reverberance)),
                "room_scale": float(rng.uniform(*self.room_scale)),
            }
        snr = pick(self.noise_p, self.snr_db)
        color = NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))] if snr is not None else None
        band: str | None = None
        if rng.random() < self.band_p:
            if rng.random() < self.telephone_share:
                band = "telephone-mulaw" if rng.random() < 0.5 else "telephone"
            else:
                band = f"lowpass-{rng.uniform(*self.lowpass_hz):.0f}"
        return {
            "pitch_cents": pitch,
            "tempo": tempo,
            "reverb": reverb,
            "snr_db": snr,
            "noise_color": color,
            "band": band,
        }


def apply_conditions(dry: np.ndarray, n: int, sr: int, cond: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """``dry`` (at least ``n / tempo`` samples) through ``cond`` (a ``RealUse.draw``): float64 [n]."""
    x = np.asarray(dry, dtype=np.float64)
    peak = float(np.max(np.abs(x)))
    x = x * (0.25 / peak) if peak > 0 else x  # headroom: SoX clips its float output at ±1
    source = []
    if cond.get("pitch_cents") is not None:
        source += ["pitch", f"{cond['pitch_cents']:.0f}"]
    if cond.get("tempo") is not None:
        source += ["tempo", "-s", f"{cond['tempo']:.4f}"]  # -s: tuned for speech-like sounds
    if source:
        x = _sox_f32(x, sr, source)
    x = _fit_length(x, n)
    if cond.get("reverb") is not None:
        r = cond["reverb"]
        x = reverberate(x, sr, Reverb(reverberance=round(r["reverberance"]), room_scale=round(r["room_scale"])))
    if cond.get("snr_db") is not None:
        x = add_noise(x, float(cond["snr_db"]), str(cond["noise_color"]), rng, sr)
    band = cond.get("band")
    if band in ("telephone", "telephone-mulaw"):
        x = telephone_band(x, sr, mulaw=band == "telephone-mulaw")
    elif band is not None:
        x = _fit_length(_sox_f32(x, sr, ["sinc", f"-{band.split('-')[1]}"]), n)
    rms = float(np.sqrt(np.mean(x**2)))
    x = x * (_log_uniform(rng, *LEVEL_RMS) / rms) if rms > 0 else x
    peak = float(np.max(np.abs(x)))
    return x * (0.99 / peak) if peak > 0.99 else x


def render_real_use_clip(
    generator: SoundGenerator, conditions: RealUse, rng: np.random.Generator, n: int, sr: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """One clip of ``generator`` through conditions drawn from ``conditions``, and those conditions.
    The dry sound is rendered long enough that a faster tempo still fills ``n`` samples."""
    cond = conditions.draw(rng)
    dry = generator(rng, int(np.ceil(n * (cond["tempo"] or 1.0))) + 1, sr)
    if not float(np.max(np.abs(dry))) > 0:
        raise RuntimeError(f"{generator.__name__} generated no sound")
    return apply_conditions(dry, n, sr, cond, rng), cond


@dataclass(frozen=True)
class _Job:
    name: str
    generator: SoundGenerator
    label: int
    seed: int
    sample_rate: int
    n_samples: int
    folder: Path
    clips: tuple[tuple[int, int], ...]
    conditions: RealUse


def _render(job: _Job) -> list[ManifestRecord]:
    shard = job.folder / "clips.jsonl"
    if shard.exists():
        return read_manifest(shard)
    records = []
    for j, fold in job.clips:
        rng = np.random.default_rng(np.random.SeedSequence([job.seed, _class_key(job.name), 2, j]))
        x, cond = render_real_use_clip(job.generator, job.conditions, rng, job.n_samples, job.sample_rate)
        path = write_wav(job.folder / f"{job.name}_{j:04d}.wav", x, job.sample_rate)
        extra = {"fold": fold, "label": job.label, "sample_rate": job.sample_rate, **cond}
        records.append(
            ManifestRecord(
                path=path, identity=job.name, duration=job.n_samples / job.sample_rate, split=f"fold{fold}", extra=extra
            )
        )
    write_manifest(shard, records)
    return records


def build_real_use_corpus(
    out_dir: str | os.PathLike[str],
    generators: Mapping[str, SoundGenerator],
    conditions: RealUse,
    *,
    clips_per_class: int,
    clip_seconds: float,
    sample_rate: int = 16000,
    n_folds: int = 5,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render every class of ``generators`` through ``conditions`` into ``out_dir`` (built once,
    then cached; other arguments rebuild it); returns the manifest path. Records carry the
    drawn conditions as extras (``pitch_cents``, ``tempo``, ``reverb``, ``snr_db``, ``band``)."""
    out_dir = Path(out_dir).resolve()
    if not generators or clips_per_class < 1 or n_folds < 1:
        raise ValueError("need at least one class, clips_per_class >= 1 and n_folds >= 1")
    args = {
        "kind": "real_use_sound_corpus",
        "classes": list(generators),
        "conditions": json.loads(json.dumps(dataclasses.asdict(conditions))),  # as build.json reads back
        "clips_per_class": clips_per_class,
        "clip_seconds": clip_seconds,
        "sample_rate": sample_rate,
        "n_folds": n_folds,
        "seed": seed,
    }
    manifest = out_dir / "manifest.jsonl"
    if _start_build(out_dir, args):
        return manifest
    n = max(1, round(clip_seconds * sample_rate))
    jobs = []
    for label, (name, generator) in enumerate(generators.items()):
        folds = fold_assignment(clips_per_class, n_folds, label, np.random.default_rng([seed, _class_key(name), 1]))
        clips = tuple(enumerate(int(f) for f in folds))
        jobs.append(_Job(name, generator, label, seed, sample_rate, n, out_dir / "audio" / name, clips, conditions))
    workers = min((os.cpu_count() or 1) if workers is None else workers, len(jobs))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            records = _collect(pool.map(_render, jobs), len(jobs), progress)
    else:
        records = _collect(map(_render, jobs), len(jobs), progress)
    write_manifest(manifest, records)
    _finish_build(out_dir, classes=list(generators))
    return manifest
