"""Trial lists, the landmark .npz and waveform batches: the formats both sides share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts.landmarks_npz import ARRAYS, read_landmarks_npz, write_landmarks_npz
from contracts.trials import Trial, format_trial, parse_trial
from contracts.waveforms import waveform_batch


def test_trial_lines_round_trip_and_bad_lines_name_where(tmp_path: Path) -> None:
    trial = Trial("spk01", tmp_path / "audio" / "spk02" / "test00.wav", False)
    line = format_trial(trial, tmp_path)
    assert line == "0 spk01 audio/spk02/test00.wav"
    assert parse_trial(line, tmp_path, {"spk01": []}, "trials.txt:1") == trial
    for bad in ("2 spk01 a.wav", "1 nobody a.wav", "1 spk01"):
        with pytest.raises(ValueError, match="trials.txt:7: bad trial line"):
            parse_trial(bad, tmp_path, {"spk01": []}, "trials.txt:7")


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    c, t, s, p, f = 2, 3, 7, 5, 4
    return {
        "initial_shape": rng.random((p, 2)),
        "anchor_idx": rng.integers(0, p, (c, f)),
        "deltas": rng.random((c, f, 2)),
        "split_idx": rng.integers(0, f, (c, t, s, 2)),
        "split_thresh": rng.random((c, t, s)),
        "leaf_values": rng.random((c, t, s + 1, p, 2)),
    }


def test_landmark_npz_round_trips_with_its_dtypes(tmp_path: Path) -> None:
    arrays = _arrays()
    back = read_landmarks_npz(write_landmarks_npz(tmp_path / "m.npz", arrays))
    for name, dtype in ARRAYS.items():
        assert back[name].dtype == dtype
        np.testing.assert_allclose(back[name], arrays[name].astype(dtype))


def test_landmark_npz_refuses_other_formats_and_missing_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "old.npz", format=np.int32(9), **_arrays())
    with pytest.raises(ValueError, match="format 9, this reader knows 1"):
        read_landmarks_npz(tmp_path / "old.npz")
    partial = {k: v for k, v in _arrays().items() if k != "deltas"}
    with pytest.raises(ValueError, match="lacks"):
        write_landmarks_npz(tmp_path / "p.npz", partial)


def test_waveform_batch_pads_with_zeros_and_keeps_lengths() -> None:
    clips = [np.ones(3, np.float32), np.full(5, 2.0, np.float32)]
    feeds = waveform_batch(clips)
    assert feeds["waveform"].tolist() == [[1, 1, 1, 0, 0], [2, 2, 2, 2, 2]]
    assert feeds["lengths"].dtype == np.int64 and feeds["lengths"].tolist() == [3, 5]
    with pytest.raises(ValueError):
        waveform_batch([])
