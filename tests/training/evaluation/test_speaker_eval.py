"""Evaluation of an encoder on utterance pairs: trials, padding-safe batching, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from training.data.manifest import ManifestRecord
from training.evaluation.speaker_eval import embed_paths, evaluate_encoder, pair_trials


class SpectralEncoder(torch.nn.Module):
    """A fixed 'encoder': the energy share of 64 frequency bands over the valid samples."""

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        rows = []
        for x, n in zip(waveform, lengths):
            spectrum = torch.fft.rfft(x[: int(n)]).abs() ** 2
            bands = torch.stack([b.mean() for b in torch.chunk(spectrum, 64)])
            rows.append(bands / bands.sum())
        return torch.stack(rows)


def _corpus(tmp_path: Path) -> list[ManifestRecord]:
    rng = np.random.default_rng(0)
    records = []
    for spk, freq in enumerate((300, 900, 2500)):
        for utt in range(3):
            n = 8000 + 1000 * utt
            x = np.sin(2 * np.pi * freq * np.arange(n) / 16000) + 0.05 * rng.standard_normal(n)
            path = tmp_path / f"s{spk}-{utt}.wav"
            sf.write(path, x.astype(np.float32) * 0.3, 16000)
            records.append(ManifestRecord(path, f"s{spk}", n / 16000, "heldout"))
    records.append(ManifestRecord(tmp_path / "s0-0.wav", "s0", 0.5, "train"))
    return records


def test_pair_trials_cover_every_heldout_pair_once(tmp_path):
    trials = pair_trials(_corpus(tmp_path))
    assert len(trials) == 9 * 8 // 2 and sum(t.target for t in trials) == 3 * 3
    assert len({(t.enroll, t.test) for t in trials}) == len(trials)


def test_embeddings_do_not_depend_on_batch_companions(tmp_path):
    paths = [r.path for r in _corpus(tmp_path)[:9]]
    together = embed_paths(SpectralEncoder(), paths, batch_size=9)
    alone = embed_paths(SpectralEncoder(), paths, batch_size=1)
    for p in paths:
        np.testing.assert_allclose(together[p], alone[p], atol=1e-5)
        assert abs(np.linalg.norm(together[p]) - 1) < 1e-5


def test_report_separates_tones_and_writes_files(tmp_path):
    report = evaluate_encoder(SpectralEncoder(), pair_trials(_corpus(tmp_path)), tmp_path / "eval", name="tones")
    assert report["eer"] == 0.0 and report["trials"] == 36
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["n_target"] == 9
    assert (tmp_path / "eval" / "det.png").stat().st_size > 5000
