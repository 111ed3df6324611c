"""The log-mel front end of the trained speaker encoders: frame counts, masking, normalisation."""

from __future__ import annotations

import pytest
import torch

from training.frontends.logmel import LogMelFrontend, frame_mask
from training.frontends.mel import MelSpectrogram


def _padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    batch = torch.zeros(len(rows), int(lengths.max()))
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    return batch, lengths


def test_frame_mask():
    mask = frame_mask(torch.tensor([3, 1, 5]), 5)
    assert mask.dtype == torch.bool and mask.shape == (3, 5)
    assert mask.sum(1).tolist() == [3, 1, 5]
    assert mask[0].tolist() == [True, True, True, False, False]


def test_shapes_and_frame_counts():
    frontend = LogMelFrontend()
    feats, frame_lengths = frontend(torch.randn(3, 16000), torch.tensor([16000, 15999, 160]))
    assert feats.shape == (3, 80, 101)  # 1 + T // 160
    assert frame_lengths.tolist() == [101, 100, 2]
    assert frame_lengths.dtype == torch.int64


def test_equals_mean_normalised_log_mel_of_the_row_alone():
    x = torch.randn(1, 12345) * 0.1
    feats, _ = LogMelFrontend()(x, torch.tensor([12345]))
    raw = MelSpectrogram(16000, 512, 160, 80, 400, 20.0, 7600.0, log=True)(x).transpose(1, 2)
    torch.testing.assert_close(feats, raw - raw.mean(-1, keepdim=True), rtol=0, atol=1e-5)
    assert feats.mean(-1).abs().max() < 1e-5
    unnormalised, _ = LogMelFrontend(mean_norm=False)(x, torch.tensor([12345]))
    torch.testing.assert_close(unnormalised, raw, rtol=0, atol=1e-6)


def test_padded_batch_equals_rows_alone_and_padding_is_zero():
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randn(n, generator=gen) * 0.1 for n in (16000, 15999, 9001, 100)]
    batch, lengths = _padded(rows)
    batch[1, 15999:] = 5.0  # whatever sits past a row's length is ignored, not only zeros
    frontend = LogMelFrontend()
    feats, frame_lengths = frontend(batch, lengths)
    for i, row in enumerate(rows):
        alone, n = frontend(row[None], lengths[i : i + 1])
        assert int(n) == int(frame_lengths[i]) == alone.shape[-1]
        assert (feats[i, :, : alone.shape[-1]] - alone[0]).abs().max() <= 1e-5
        assert torch.all(feats[i, :, int(n) :] == 0)


def test_config_is_checked():
    with pytest.raises(ValueError):
        LogMelFrontend(win_ms=40, n_fft=512)  # 640-sample window in a 512-point FFT
    assert LogMelFrontend(sample_rate=8000, n_fft=256).hop == 80
