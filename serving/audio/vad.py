"""Silero VAD on ONNX Runtime, without torch (DESIGN §6: voice activity — Silero VAD, MIT).

Frame probabilities as the official package computes them, and a numpy port of its
``get_speech_timestamps_from_probs`` (probabilities → segments), silero-vad 6.x: the tests hold
both to the package's own output. Only 16 kHz is supported here; the pipeline resamples.

The model is the wheel's ``silero_vad_16k_sequence.onnx`` (what ``export`` imports): ``input``
float32 [frames, 64 + 512] (each frame is the previous frame's last 64 samples, then its own 512),
``h``, ``c`` float32 [1, 1, 128] (LSTM state in) → ``speech_probs`` float32 [frames], ``hn``,
``cn``. It gives the streaming ``silero_vad.onnx``'s probabilities, but one call runs a block of
up to ``MAX_FRAMES`` frames, so the Python-side cost per call (spent holding the GIL) is paid
once per block rather than once per 32 ms, which matters most next to busy gRPC threads. (No
bench here times the streaming graph; ``bench/audio_stages.py`` times the graph the gateway runs
against the wheel's sequence graph.)
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
WINDOW = 512  # samples per frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees again
MAX_FRAMES = 512  # frames per call of the sequence model (16.4 s): bounds its working memory
SEQUENCE_INPUTS = frozenset({"input", "h", "c"})


@dataclass(frozen=True)
class VadParams:
    """``get_speech_timestamps`` arguments, same names and defaults as silero-vad 6.x.

    threshold: a frame with probability ≥ threshold is speech. neg_threshold: while in speech,
    a frame below it is silence (default max(threshold − 0.15, 0.01)). Durations as named.
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_duration_ms: int = 250
    max_speech_duration_s: float = math.inf
    min_silence_duration_ms: int = 100
    speech_pad_ms: int = 30
    min_silence_at_max_speech: int = 98
    use_max_poss_sil_at_max_speech: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if min(self.min_speech_duration_ms, self.min_silence_duration_ms, self.speech_pad_ms) < 0:
            raise ValueError("VAD durations must be non-negative")
        if self.max_speech_duration_s <= 0:
            raise ValueError("max_speech_duration_s must be positive")


class SileroVad:
    """Silero VAD for 16 kHz mono float32 audio.

    One ORT session is shared by all threads (``InferenceSession.run`` is thread-safe); the
    recurrent state lives in each call's locals, so concurrent calls never mix. The session is
    created on first use (or by :meth:`load`), not in the constructor.
    """

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        self._session = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Create the ORT session now (the server calls this before reporting SERVING)."""
        self._get_session()

    def _get_session(self):  # -> onnxruntime.InferenceSession
        with self._lock:
            if self._session is None:
                import onnxruntime as ort  # the serve extra; imported where it is used

                if not self.model_path.is_file():
                    raise FileNotFoundError(f"Silero VAD model not found: {self.model_path}")
                opts = ort.SessionOptions()
                # One intra-op thread by default: concurrency comes from the callers' threads
                # (ORT releases the GIL inside run); more per call only contend on small machines.
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                session = ort.InferenceSession(
                    str(self.model_path), sess_options=opts, providers=["CPUExecutionProvider"]
                )
                names = frozenset(i.name for i in session.get_inputs())
                if names != SEQUENCE_INPUTS:
                    raise ValueError(
                        f"{self.model_path} is not Silero's sequence VAD model: inputs "
                        f"{sorted(names)}, expected {sorted(SEQUENCE_INPUTS)}"
                    )
                self._session = session
            return self._session

    def speech_probabilities(self, x16k: np.ndarray) -> np.ndarray:
        """x16k: float32 [n] at 16 kHz → float32 [ceil(n / 512)], one probability per 32 ms.

        The last frame is zero-padded, as the official package does.
        """
        frames = _frames(_check_audio(x16k))
        session = self._get_session()
        return _run_sequence(session, frames)

    def speech_segments(self, x16k: np.ndarray, params: VadParams = VadParams()) -> list[tuple[int, int]]:
        """x16k: float32 [n] at 16 kHz → speech segments [(start, end)) in samples, padded by
        params.speech_pad_ms, as ``get_speech_timestamps`` returns them."""
        probs = self.speech_probabilities(x16k)
        return segments_from_probabilities(probs, x16k.shape[0], params)


def _frames(x: np.ndarray) -> np.ndarray:
    """x: float32 [n] → float32 [ceil(n / 512), 576], the model input of every frame.

    With the audio zero-padded by 64 samples in front and to a whole frame at the end, row i is
    padded[i*512 : i*512 + 576]: the previous frame's last 64 samples (zeros before the first),
    then frame i — what the package's ``frame_blocks`` and ``OnnxWrapper`` build, in one copy.
    """
    n_frames = -(-x.shape[0] // WINDOW)
    if n_frames == 0:
        return np.zeros((0, CONTEXT + WINDOW), dtype=np.float32)
    padded = np.zeros(CONTEXT + n_frames * WINDOW, dtype=np.float32)
    padded[CONTEXT : CONTEXT + x.shape[0]] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, CONTEXT + WINDOW)[::WINDOW]
    return np.ascontiguousarray(windows)


def _run_sequence(session, frames: np.ndarray) -> np.ndarray:
    """Blocks of up to MAX_FRAMES frames per call; the LSTM state (h, c) carries across blocks."""
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    probs = np.empty(frames.shape[0], dtype=np.float32)
    for i in range(0, frames.shape[0], MAX_FRAMES):
        out, h, c = session.run(["speech_probs", "hn", "cn"], {"input": frames[i : i + MAX_FRAMES], "h": h, "c": c})
        probs[i : i + MAX_FRAMES] = out.reshape(-1)
    return probs


def trim_to_speech(x: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    """x: float32 [n]; segments in samples of x → float32 [Σ(end − start)], the speech only."""
    if not segments:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate([x[s:e] for s, e in segments]), dtype=np.float32)


def segments_from_probabilities(
    probs: np.ndarray, n_samples: int, params: VadParams = VadParams()
) -> list[tuple[int, int]]:
    """Port of silero-vad 6.x ``get_speech_timestamps_from_probs`` at 16 kHz, in samples.

    probs: [n_frames] frame probabilities; n_samples: length of the audio they came from.
    """
    seg = _Segmenter.for_params(params)
    for i, prob in enumerate(np.asarray(probs, dtype=np.float64).tolist()):
        seg.step(i, prob)
    return seg.finish(n_samples)


@dataclass
class _Segmenter:
    """The official loop's state machine; kept statement for statement so parity is provable."""

    params: VadParams
    neg: float
    min_speech: float
    pad: float
    max_speech: float
    min_silence: float
    min_silence_at_max: float
    triggered: bool = False
    speeches: list[list[int]] = field(default_factory=list)
    current: list[int] = field(default_factory=list)  # [] or [start] or [start, end]
    temp_end: int = 0
    prev_end: int = 0
    next_start: int = 0
    possible_ends: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def for_params(cls, p: VadParams) -> _Segmenter:
        neg = p.neg_threshold if p.neg_threshold is not None else max(p.threshold - 0.15, 0.01)
        pad = SAMPLE_RATE * p.speech_pad_ms / 1000
        return cls(
            params=p,
            neg=neg,
            pad=pad,
            min_speech=SAMPLE_RATE * p.min_speech_duration_ms / 1000,
            max_speech=SAMPLE_RATE * p.max_speech_duration_s - WINDOW - 2 * pad,
            min_silence=SAMPLE_RATE * p.min_silence_duration_ms / 1000,
            min_silence_at_max=SAMPLE_RATE * p.min_silence_at_max_speech / 1000,
        )

    def _reset(self, triggered: bool) -> None:
        self.prev_end = self.next_start = self.temp_end = 0
        self.possible_ends = []
        self.triggered = triggered

    def step(self, i: int, prob: float) -> None:
        cur = WINDOW * i
        speech = prob >= self.params.threshold
        if speech and self.temp_end:  # speech is back: remember the silence as a cut candidate
            sil = cur - self.temp_end
            if sil > self.min_silence_at_max:
                self.possible_ends.append((self.temp_end, sil))
            self.temp_end = 0
            if self.next_start < self.prev_end:
                self.next_start = cur
        if speech and not self.triggered:
            self.triggered = True
            self.current = [cur]
            return
        if self.triggered and cur - self.current[0] > self.max_speech:
            if self._cut_at_max_speech(cur):
                return
        if prob < self.neg and self.triggered:
            self._silence(cur)

    def _cut_at_max_speech(self, cur: int) -> bool:
        """The segment reached max_speech_duration_s; True means "skip to the next frame"."""
        if self.params.use_max_poss_sil_at_max_speech and self.possible_ends:
            self.prev_end, dur = max(self.possible_ends, key=lambda x: x[1])
            self.speeches.append([self.current[0], self.prev_end])
            self.next_start = self.prev_end + dur
            keep = self.next_start < self.prev_end + cur  # (sic) as upstream
            self.current = [self.next_start] if keep else []
            self._reset(triggered=keep)
            return False
        if self.prev_end:
            self.speeches.append([self.current[0], self.prev_end])
            keep = not self.next_start < self.prev_end
            self.current = [self.next_start] if keep else []
            self._reset(triggered=keep)
            return False
        self.speeches.append([self.current[0], cur])
        self.current = []
        self._reset(triggered=False)
        return True

    def _silence(self, cur: int) -> None:
        if not self.temp_end:
            self.temp_end = cur
        sil_now = cur - self.temp_end
        if not self.params.use_max_poss_sil_at_max_speech and sil_now > self.min_silence_at_max:
            self.prev_end = self.temp_end
        if sil_now < self.min_silence:
            return
        if self.temp_end - self.current[0] > self.min_speech:
            self.speeches.append([self.current[0], self.temp_end])
        self.current = []
        self._reset(triggered=False)

    def finish(self, n_samples: int) -> list[tuple[int, int]]:
        if self.current and n_samples - self.current[0] > self.min_speech:
            self.speeches.append([self.current[0], n_samples])
        sp, pad = self.speeches, self.pad
        for i, s in enumerate(sp):
            if i == 0:
                s[0] = int(max(0, s[0] - pad))
            if i != len(sp) - 1:
                gap = sp[i + 1][0] - s[1]
                if gap < 2 * pad:
                    s[1] += int(gap // 2)
                    sp[i + 1][0] = int(max(0, sp[i + 1][0] - gap // 2))
                else:
                    s[1] = int(min(n_samples, s[1] + pad))
                    sp[i + 1][0] = int(max(0, sp[i + 1][0] - pad))
            else:
                s[1] = int(min(n_samples, s[1] + pad))
        return [(int(s), int(e)) for s, e in sp]


def _check_audio(x: np.ndarray) -> np.ndarray:
    """Programming-error guard: the pipeline has validated the request before this point."""
    if x.ndim != 1:
        raise ValueError(f"VAD expects mono audio [n], got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("VAD input holds NaN or infinite samples")
    return x
