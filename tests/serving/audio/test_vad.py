"""Silero VAD on ORT: parity with the official silero-vad package (its per-frame streaming path
and its batched sequence path), and behaviour on speech, silence, noise and padding. Only the
parity tests import torch (through silero_vad)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.audio.vad import SileroVad, VadParams, segments_from_probabilities, trim_to_speech
from tests.serving.audio.helpers import pad

# silero_vad's loader uses a deprecated importlib.resources call; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:path is deprecated:DeprecationWarning")

SR = 16_000
PARAMS = [
    VadParams(),
    VadParams(threshold=0.3, min_silence_duration_ms=300, speech_pad_ms=100),
    VadParams(max_speech_duration_s=1.0),
    VadParams(max_speech_duration_s=1.0, use_max_poss_sil_at_max_speech=False),
    VadParams(threshold=0.7, neg_threshold=0.6, min_speech_duration_ms=50, speech_pad_ms=0),
]


@pytest.fixture(scope="module")
def official():
    """(model, get_speech_timestamps, get_speech_timestamps_from_probs) of the silero-vad wheel."""
    torch = pytest.importorskip("torch")
    silero = pytest.importorskip("silero_vad")
    return torch, silero.load_silero_vad(onnx=True), silero


@pytest.fixture(scope="module")
def parity_audio(speech_16k: np.ndarray) -> np.ndarray:
    """Silence, speech, a pause, speech again, then low noise: both edges and a gap."""
    rng = np.random.default_rng(1)
    gap = np.zeros(int(0.6 * SR), np.float32)
    noise = (0.003 * rng.standard_normal(SR)).astype(np.float32)
    x = np.concatenate([np.zeros(SR, np.float32), speech_16k, gap, speech_16k[: 2 * SR], noise])
    return x[: len(x) - 123]  # a partial last frame, as real clips have


def test_probabilities_match_official_package(vad: SileroVad, official, parity_audio) -> None:
    torch, model, _ = official
    ours = vad.speech_probabilities(parity_audio)
    ref = model.audio_forward(torch.from_numpy(parity_audio), SR).numpy()[0]
    assert ours.shape == ref.shape == (math.ceil(len(parity_audio) / 512),)
    assert float(np.max(np.abs(ours - ref))) <= 1e-4


@pytest.mark.parametrize("params", PARAMS, ids=[f"p{i}" for i in range(len(PARAMS))])
def test_segments_match_official_package(vad: SileroVad, official, parity_audio, params: VadParams) -> None:
    torch, model, silero = official
    ours = vad.speech_segments(parity_audio, params)
    ref = silero.get_speech_timestamps(torch.from_numpy(parity_audio), model, **asdict(params))
    assert ours == [(d["start"], d["end"]) for d in ref]
    assert ours  # the audio has speech: the comparison is not vacuous


@pytest.fixture(scope="module")
def official_sequence(official, vad_model_path):
    """(SileroVADSequence on the same file, the silero_vad module): the package's batched path."""
    _, _, silero = official
    from silero_vad.sequence_vad import SileroVADSequence

    return SileroVADSequence(str(vad_model_path)), silero


def test_probabilities_match_official_sequence_path(
    vad: SileroVad, official_sequence, parity_audio, monkeypatch
) -> None:
    """Same framing and blocks as ``SileroVADSequence.audio_forward``: the same bits. Small
    blocks make the LSTM state cross many block boundaries, and must not change a frame."""
    model, _ = official_sequence
    ref = model.audio_forward(parity_audio)
    np.testing.assert_array_equal(vad.speech_probabilities(parity_audio), ref)
    for frames in (1, 37):
        monkeypatch.setattr("serving.audio.vad.MAX_FRAMES", frames)
        np.testing.assert_array_equal(vad.speech_probabilities(parity_audio), ref)
        np.testing.assert_array_equal(model.audio_forward(parity_audio, max_frames=frames), ref)


def test_segments_match_official_sequence_path(vad: SileroVad, official_sequence, parity_audio) -> None:
    model, silero = official_sequence
    from silero_vad.sequence_vad import get_speech_timestamps_sequence

    for params in PARAMS:
        ref = get_speech_timestamps_sequence(parity_audio, model, **asdict(params))
        assert vad.speech_segments(parity_audio, params) == [(d["start"], d["end"]) for d in ref]


def test_other_model_file_is_refused(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Identity", ["x"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match="not Silero.s sequence VAD model"):
        SileroVad(path).load()


_runs = st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 40)), min_size=0, max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    runs=_runs,
    threshold=st.floats(0.05, 0.95),
    neg=st.one_of(st.none(), st.floats(0.01, 1.0)),
    min_speech=st.integers(0, 600),
    max_speech=st.one_of(st.just(math.inf), st.floats(0.1, 4.0)),
    min_silence=st.integers(0, 400),
    pad_ms=st.integers(0, 200),
    sil_at_max=st.integers(0, 300),
    use_max=st.booleans(),
    short=st.integers(0, 511),
)
def test_segment_logic_matches_official_on_any_probabilities(
    official, runs, threshold, neg, min_speech, max_speech, min_silence, pad_ms, sil_at_max, use_max, short
) -> None:
    """The state machine alone, on probability sequences built from runs, every branch."""
    _, _, silero = official
    probs = np.array([p for p, n in runs for _ in range(n)], np.float32)
    params = VadParams(
        threshold=threshold,
        neg_threshold=neg,
        min_speech_duration_ms=min_speech,
        max_speech_duration_s=max_speech,
        min_silence_duration_ms=min_silence,
        speech_pad_ms=pad_ms,
        min_silence_at_max_speech=sil_at_max,
        use_max_poss_sil_at_max_speech=use_max,
    )
    n = max(len(probs) * 512 - short, 0)
    ref = silero.get_speech_timestamps_from_probs([float(p) for p in probs], audio_length_samples=n, **asdict(params))
    assert segments_from_probabilities(probs, n, params) == [(d["start"], d["end"]) for d in ref]


def test_speech_is_found(vad: SileroVad, speech_16k: np.ndarray) -> None:
    x = pad(speech_16k, 1.0)
    segs = vad.speech_segments(x)
    assert segs
    assert segs[0][0] >= 0.8 * SR and segs[-1][1] <= len(x) - 0.8 * SR
    assert sum(e - s for s, e in segs) > 0.6 * len(speech_16k)


@pytest.mark.parametrize("level", [0.0, 0.001, 0.005])
def test_no_speech_in_silence_or_low_noise(vad: SileroVad, level: float) -> None:
    x = (level * np.random.default_rng(3).standard_normal(5 * SR)).astype(np.float32)
    assert vad.speech_segments(x) == []
    assert float(vad.speech_probabilities(x).max()) < 0.5


def test_trimming_removes_padding(vad: SileroVad, speech_16k: np.ndarray) -> None:
    x = pad(speech_16k, 2.0, noise=0.001)
    trimmed = trim_to_speech(x, vad.speech_segments(x))
    assert trimmed.dtype == np.float32
    # espeak leaves a little silence of its own, and pauses inside the sentence may be cut.
    assert 0.6 * len(speech_16k) < len(trimmed) <= len(speech_16k) + 0.2 * SR
    assert trim_to_speech(x, []).shape == (0,)


def test_edges_and_concurrency(vad: SileroVad, speech_16k: np.ndarray) -> None:
    assert vad.speech_probabilities(np.zeros(0, np.float32)).shape == (0,)
    assert vad.speech_probabilities(np.zeros(100, np.float32)).shape == (1,)
    with pytest.raises(ValueError):
        vad.speech_probabilities(np.full(600, np.nan, np.float32))
    # The recurrent state is per call: concurrent calls give the sequential answers.
    clips = [speech_16k[i * 8000 : (i + 3) * 8000] for i in range(4)]
    expected = [vad.speech_probabilities(c) for c in clips]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(vad.speech_probabilities, clips * 2))
    for e, g in zip(expected * 2, got):
        np.testing.assert_array_equal(e, g)


def test_missing_model_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="Silero VAD model not found"):
        SileroVad(tmp_path / "nope.onnx").load()
