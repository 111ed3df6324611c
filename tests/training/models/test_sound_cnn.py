"""Sound CNN: shapes, pooled frame counts, padding invariance, gain invariance, ONNX parity, training."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.models import build_sound_encoder
from training.models.sound_cnn import SoundCnn, pooled_lengths

SMALL = dict(n_mels=24, channels=(4, 8, 8, 16), embedding_dim=16, frontend={"n_mels": 24})


def _trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Eval mode with random BN statistics and affines, so BN shifts padding frames as trained BN does."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=gen) * 0.5)
            module.running_var.copy_(torch.rand(shape, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(shape, generator=gen) * 0.5)
    return model.eval()


def _padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    batch = torch.zeros(len(rows), int(lengths.max()))
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    return batch, lengths


def test_default_shapes_and_registry():
    model = build_sound_encoder("sound_cnn").eval()
    assert isinstance(model, SoundCnn) and model.embedding_dim == 128 and model.sample_rate == 16000
    assert model.frontend.n_mels == 64 and model.linear.in_features == 2 * 256
    with torch.no_grad():
        out = model(torch.randn(3, 8000) * 0.1, torch.tensor([8000, 4000, 1]))  # a one-sample clip too
    assert out.shape == (3, 128) and torch.isfinite(out).all()


def test_every_block_reports_the_frame_count_its_output_has():
    model = SoundCnn(**SMALL).eval()
    seen: list[tuple[int, int]] = []
    for block in model.blocks:
        block.register_forward_hook(lambda _m, _i, out: seen.append((out[0].shape[-1], int(out[1][0]))))
    with torch.no_grad():
        for samples in (1, 160, 161, 1599, 4321):  # one row alone: its valid count is its whole length
            seen.clear()
            model(torch.randn(1, samples), torch.tensor([samples]))
            assert len(seen) == 4 and all(actual == reported for actual, reported in seen)
    assert pooled_lengths(torch.tensor([1, 2, 3, 10, 11])).tolist() == [1, 1, 2, 5, 6]


def test_padded_batch_equals_each_row_alone():
    torch.manual_seed(0)
    model = _trained_like(SoundCnn(**SMALL))
    # Frame counts odd and even at every pooling level, and a clip shorter than one hop.
    rows = [torch.randn(n) * 0.1 for n in (16000, 15999, 11003, 1280, 480, 100)]
    batch, lengths = _padded(rows)
    batch[1:, -50:] += 1.0  # garbage past a row's length must be ignored too
    with torch.no_grad():
        batched = model(batch, lengths)
        alone = torch.cat([model(row[None], lengths[i : i + 1]) for i, row in enumerate(rows)])
        as_if_real = model(batch, torch.full_like(lengths, batch.shape[1]))
    assert batched.shape == (6, 16)
    assert (batched - alone).abs().max() <= 1e-5
    assert (as_if_real[1:] - alone[1:]).abs().amax(1).min() > 1e-3


def test_embedding_ignores_the_recording_gain_but_not_the_spectral_shape():
    torch.manual_seed(1)
    model = _trained_like(SoundCnn(**SMALL), seed=1)
    white = torch.randn(1, 8000) * 0.1
    red = torch.cumsum(torch.randn(1, 8000), dim=1) * 0.01  # 1/f² noise: the same level, another slope
    red = red * white.std() / red.std()
    lengths = torch.tensor([8000])
    with torch.no_grad():
        base, louder, other = (model.features(x, lengths)[0] for x in (white, white * 8.0, red))
        embeddings = [model(x, lengths) - model.linear.bias for x in (white, white * 8.0)]
    assert (base - louder).abs().max() <= 1e-3 and (base - other).abs().mean() > 0.5
    assert (embeddings[0] - embeddings[1]).abs().max() <= 1e-3 * embeddings[0].abs().max()


def test_onnx_export_matches_torch(tmp_path):
    from export.onnx_export import export_onnx
    from export.parity import require, torch_vs_onnx

    torch.manual_seed(1)
    model = _trained_like(SoundCnn(**SMALL), seed=1)
    path = export_onnx(
        model,
        (torch.randn(2, 8000) * 0.1, torch.tensor([8000, 6001])),
        tmp_path / "sound.onnx",
        input_names=["waveform", "lengths"],
        output_names=["embedding"],
        dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}, "embedding": {0: "batch"}},
    )
    rng = np.random.default_rng(0)
    feeds = [
        {
            "waveform": (rng.standard_normal((3, 12345)) * 0.1).astype(np.float32),
            "lengths": np.array([12345, 9000, 4001]),
        },
        {"waveform": (rng.standard_normal((1, 20000)) * 0.1).astype(np.float32), "lengths": np.array([20000])},
    ]
    require(torch_vs_onnx("sound_cnn", model, path, feeds), max_abs_diff=1e-4)


def test_train_mode_backward_reaches_the_first_conv_and_eval_is_deterministic():
    torch.manual_seed(2)
    model = SoundCnn(**SMALL).train()
    x, lengths = torch.randn(3, 6000) * 0.1, torch.tensor([6000, 5000, 3001])
    model(x, lengths).pow(2).sum().backward()
    grad = model.blocks[0].conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x, lengths), model(x, lengths))
