"""Shared fixtures: the Silero ONNX files from the silero-vad wheel and generated speech.

The ONNX files are located without importing the silero_vad package (which imports torch), so only
the parity tests pay for torch. Speech comes from espeak-ng, generated once per session.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from serving.audio.vad import SileroVad
from tests.serving.audio.helpers import espeak


def _wheel_file(name: str) -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the silero-vad package (models extra) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        pytest.skip(f"no {path}")
    return path


@pytest.fixture(scope="session")
def vad_model_path() -> Path:
    """The sequence model, the file ``export`` imports (one ONNX call per block of frames)."""
    return _wheel_file("silero_vad_16k_sequence.onnx")


@pytest.fixture(scope="session")
def vad(vad_model_path: Path) -> SileroVad:
    return SileroVad(vad_model_path)


@pytest.fixture(scope="session")
def speech_16k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """About 6 s of a sentence, float32 [n] at 16 kHz, no padding."""
    return espeak(
        "The quick brown fox jumps over the lazy dog. Speaker verification needs a few seconds of clear speech.",
        tmp_path_factory.mktemp("tts"),
        "sentence",
    )


@pytest.fixture(scope="session")
def short_word_16k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """One short word (well under a second of speech), float32 [n] at 16 kHz."""
    return espeak("yes", tmp_path_factory.mktemp("tts"), "word")
