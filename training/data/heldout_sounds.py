"""Everyday-sound classes held out of ALL training (formula pre-training and the everyday mix).

``HELDOUT_CLASSES`` has the shape of ``sound_corpus.SOUND_CLASSES`` (generator(rng, n, sr) → dry
float64 [n]) but none of its names, and no recipe, dev set or calibration draws from it: it
exists so that few-shot top-1 and open-set acceptance can be measured on sounds the model has
never heard (``bench/sound_transfer.py``). A test checks that the two registries are disjoint.
"""

from __future__ import annotations

import numpy as np

from training.data.sound_corpus import (
    SOUND_CLASSES,
    SoundGenerator,
    _decay,
    _filter,
    _log_uniform,
    _onsets,
    _place,
    _smooth_random,
    _tone,
)


def phone_ring(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Ring cadence (0.4 s on, 0.2 off, 0.4 on, 2 s off, scaled ±20%): a 15–25 Hz trill
    between two tones in 400–1000 Hz, rich in harmonics like a bell ringer."""
    scale = rng.uniform(0.8, 1.2)
    f_a = rng.uniform(400, 1000)
    f_b = f_a * rng.uniform(1.15, 1.35)
    trill = rng.uniform(15, 25)
    out = np.zeros(n)
    t0 = rng.uniform(0, 0.5)
    for cycle in np.arange(t0, n / sr, 3.0 * scale):
        for burst in (0.0, 0.6 * scale):
            m = int(0.4 * scale * sr)
            t = np.arange(m) / sr
            freqs = np.where(np.sin(2 * np.pi * trill * t) > 0, f_a, f_b)
            _place(out, _tone(freqs, sr, np.array([1.0, 0.5, 0.3, 0.1])), cycle + burst, sr)
    return out


def keyboard(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Typing (4–10 keys/s, irregular): each key a 1–3 ms click then a duller key-bottom thock."""
    out = np.zeros(n)
    for start in _onsets(rng, n / sr, rng.uniform(4, 10), 0.7):
        click = _decay(sr, rng.uniform(0.001, 0.003))
        click = _filter(click * rng.standard_normal(click.size), sr, "bandpass", (2000.0, 7000.0))
        thock = _decay(sr, rng.uniform(0.006, 0.015))
        thock = thock * np.sin(2 * np.pi * rng.uniform(300, 900) * np.arange(thock.size) / sr)
        _place(out, click, start, sr, rng.uniform(0.5, 1.0))
        _place(out, thock, start + rng.uniform(0.005, 0.02), sr, rng.uniform(0.2, 0.6))
    return out


def applause(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A crowd clapping: 20–200 claps/s, each a 5–15 ms burst of band-passed noise."""
    out = np.zeros(n)
    rate = _log_uniform(rng, 20.0, 200.0)
    starts = np.flatnonzero(rng.random(n) < rate / sr) / sr
    for start in starts:
        env = _decay(sr, rng.uniform(0.002, 0.005), rng.uniform(0.005, 0.015))
        low = rng.uniform(600, 1500)
        clap = _filter(env * rng.standard_normal(env.size), sr, "bandpass", (low, low * rng.uniform(3, 6)))
        _place(out, clap, float(start), sr, rng.uniform(0.3, 1.0))
    return out


def cricket(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Chirps (1–4 /s) of 3–6 pulses at 30–60 pulses/s, a pure 3.5–5.5 kHz carrier."""
    out = np.zeros(n)
    carrier = min(rng.uniform(3500, 5500), 0.4 * sr)
    pulse_rate = rng.uniform(30, 60)
    for chirp in _onsets(rng, n / sr, rng.uniform(1.0, 4.0), 0.1):
        for k in range(int(rng.integers(3, 7))):
            m = int(0.6 * sr / pulse_rate)
            env = np.sin(np.pi * np.arange(m) / m) ** 2
            _place(out, env * _tone(np.full(m, carrier), sr), chirp + k / pulse_rate, sr)
    return out


def car_horn(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Honks of 0.2–1.2 s: two detuned reed tones (a major third or so apart, 300–500 Hz) with
    a harsh, saturated spectrum."""
    out = np.zeros(n)
    f0 = rng.uniform(300, 500)
    for start in _onsets(rng, n / sr, rng.uniform(0.4, 1.5), 0.4):
        m = int(rng.uniform(0.2, 1.2) * sr)
        ramp = np.minimum(1.0, np.minimum(np.arange(m), np.arange(m)[::-1]) / (0.01 * sr))
        t = np.arange(m) / sr
        honk = np.tanh(3 * (np.sin(2 * np.pi * f0 * t) + np.sin(2 * np.pi * f0 * 1.26 * t)))
        _place(out, ramp * _filter(honk, sr, "lowpass", 5000.0), start, sr)
    return out


def hammer(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Hammering a nail (1.5–4 blows/s): a sharp transient and inharmonic metallic partials."""
    out = np.zeros(n)
    partials = rng.uniform(800, 1500) * np.array([1.0, 2.76, 5.4, 8.93])
    partials = partials[partials < 0.45 * sr]
    for start in _onsets(rng, n / sr, rng.uniform(1.5, 4.0), 0.15):
        env = _decay(sr, rng.uniform(0.03, 0.1))
        t = np.arange(env.size) / sr
        ring = env * (np.sin(2 * np.pi * partials[:, None] * t) / np.arange(1, partials.size + 1)[:, None]).sum(0)
        ring[: int(0.003 * sr)] += 2 * rng.standard_normal(int(0.003 * sr))
        _place(out, ring, start, sr, rng.uniform(0.7, 1.0))
    return out


def vacuum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A vacuum cleaner: broadband airflow noise and a 150–400 Hz motor whine with harmonics,
    the load (pitch and level) wandering slowly as the nozzle moves."""
    load = _smooth_random(rng, n, sr, rng.uniform(0.3, 1.0))
    f0 = rng.uniform(150, 400) * (1 + 0.03 * load)
    whine = _tone(f0, sr, 1.0 / np.arange(1, 9))
    air = _filter(rng.standard_normal(n), sr, "bandpass", (rng.uniform(200, 600), rng.uniform(4000, 7000)))
    return (1 + 0.2 * load) * (air / np.std(air) + rng.uniform(0.3, 0.8) * whine / np.std(whine))


def sawing(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Hand sawing: back-and-forth strokes (1–2.5 /s), each a swelling rasp of band-passed noise
    whose centre rises on the push stroke."""
    t = np.arange(n) / sr
    rate = rng.uniform(1.0, 2.5)
    phase = 2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)
    stroke = np.abs(np.sin(phase)) ** 1.5
    noise = rng.standard_normal(n)
    low = _filter(noise, sr, "bandpass", (800.0, 2500.0))
    high = _filter(noise, sr, "bandpass", (2500.0, 6000.0))
    push = 0.5 + 0.5 * np.sign(np.cos(phase))
    teeth = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(60, 150) * t)  # tooth-by-tooth roughness
    return stroke * teeth * (push * high / np.std(high) + (1 - push) * low / np.std(low))


HELDOUT_CLASSES: dict[str, SoundGenerator] = {
    "phone_ring": phone_ring,
    "keyboard": keyboard,
    "applause": applause,
    "cricket": cricket,
    "car_horn": car_horn,
    "hammer": hammer,
    "vacuum": vacuum,
    "sawing": sawing,
}

assert not set(HELDOUT_CLASSES) & set(SOUND_CLASSES), "held-out classes must not be training classes"
