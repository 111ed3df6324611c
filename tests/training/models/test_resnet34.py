"""ResNet34 speaker net: size, strided frame counts, padding invariance, ONNX parity, training."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from training.models.masking import conv_output_lengths
from training.models.resnet34 import ResNet34

SMALL = dict(base_channels=8, embedding_dim=32)


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


def test_full_size_matches_the_published_wespeaker_resnet34():
    # WeSpeaker (github.com/wenet-e2e/wespeaker, examples/voxceleb/v2/README.md, results table):
    # ResNet34-TSTP-emb256 has 6.63M parameters (80 fbank, 32 base channels, one embedding layer
    # since its 2022-07 update; 6.70M before, with two). Two decimals: within 0.01M. This is the
    # speaker "thin" ResNet34 (3×3 stem, no max-pool, half of He et al.'s widths), not the ImageNet
    # ResNet-34 of He et al. (21.8M in torchvision).
    model = ResNet34().eval()
    assert abs(sum(p.numel() for p in model.parameters()) - 6.63e6) <= 0.01e6
    assert model.linear.in_features == 2 * 256 * 10
    with torch.no_grad():
        out = model(torch.randn(2, 1600) * 0.1, torch.tensor([1600, 1201]))
    assert out.shape == (2, 256) and torch.isfinite(out).all()


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(1, 64),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 3),
)
def test_frame_count_arithmetic_matches_the_conv(frames, kernel, stride, padding, dilation):
    if frames + 2 * padding < dilation * (kernel - 1) + 1:
        return  # the conv itself rejects inputs shorter than its span
    conv = nn.Conv1d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    expected = conv(torch.zeros(1, 1, frames)).shape[-1]
    assert int(conv_output_lengths(torch.tensor([frames]), kernel, stride, padding, dilation)) == expected


def test_every_block_reports_the_frame_count_its_output_has():
    model = ResNet34(**SMALL).eval()
    seen: list[tuple[int, int]] = []
    for block in model.blocks:
        block.register_forward_hook(lambda _m, _i, out: seen.append((out[0].shape[-1], int(out[1][0]))))
    with torch.no_grad():
        for samples in (160, 161, 1599, 4321):  # one row alone: its valid count is its whole length
            seen.clear()
            model(torch.randn(1, samples), torch.tensor([samples]))
            assert len(seen) == 16 and all(actual == reported for actual, reported in seen)


def test_padded_batch_equals_each_row_alone():
    torch.manual_seed(0)
    model = _trained_like(ResNet34(**SMALL))
    # Lengths chosen so that strided convs round differently per row (odd frame counts included).
    rows = [torch.randn(n) * 0.1 for n in (16000, 15999, 11003, 1280, 480)]
    batch, lengths = _padded(rows)
    with torch.no_grad():
        batched = model(batch, lengths)
        alone = torch.cat([model(row[None], lengths[i : i + 1]) for i, row in enumerate(rows)])
        as_if_real = model(batch, torch.full_like(lengths, batch.shape[1]))
    assert batched.shape == (5, 32)
    assert (batched - alone).abs().max() <= 1e-5
    assert (as_if_real[1:] - alone[1:]).abs().amax(1).min() > 1e-3


def test_onnx_export_matches_torch(tmp_path):
    from export.onnx_export import export_onnx
    from export.parity import require, torch_vs_onnx

    torch.manual_seed(1)
    model = _trained_like(ResNet34(**SMALL), seed=1)
    path = export_onnx(
        model,
        (torch.randn(2, 8000) * 0.1, torch.tensor([8000, 6001])),
        tmp_path / "resnet34.onnx",
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
    require(torch_vs_onnx("resnet34", model, path, feeds), max_abs_diff=1e-4)


def test_train_mode_backward_reaches_the_first_conv_and_eval_is_deterministic():
    torch.manual_seed(2)
    model = ResNet34(**SMALL).train()
    x, lengths = torch.randn(3, 6000) * 0.1, torch.tensor([6000, 5000, 3001])
    model(x, lengths).pow(2).sum().backward()
    grad = model.conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x, lengths), model(x, lengths))
