"""Silero VAD v6 (16 kHz, MIT) as a torch module, from the weights of its sequence ONNX graph.

Silero's graph convolves each 32 ms frame separately (``Conv`` over a batch of frames with 4
time steps each), which ONNX Runtime runs as one small GEMM per frame. Here the same arithmetic
is written as batched matrix products over all frames at once — about 3× less CPU per second of
audio — so that its export can replace the original in the model repository (``export``
checks parity against the original graph before it does).

Per frame (input ``[frames, 64 + 512]``: 64 samples of context, then the frame):
reflect-pad 128 both sides → STFT as a 256-tap, 128-hop projection onto Silero's 258 basis
rows (frames 1-4 of 5 kept) → magnitude [4, 129] → four conv(k=3, pad=1) + ReLU layers with
strides 1, 2, 2, 1 → [1, 128] → LSTM over the frames (state ``h``, ``c`` [1, 1, 128] in and
out) → ReLU → linear → sigmoid: one speech probability per frame.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HOP, CONTEXT, FRAME = 128, 64, 512
STRIDES = (1, 2, 2, 1)


def _onnx_gates_to_torch(matrix: np.ndarray) -> np.ndarray:
    """ONNX LSTM gate blocks are (i, o, f, c); torch's are (i, f, g, o)."""
    i, o, f, c = np.split(matrix, 4, axis=0)
    return np.concatenate([i, f, c, o], axis=0)


class SileroVadSequence(nn.Module):
    """input [frames, 576] float32, h, c [1, 1, 128] → speech_probs [frames], hn, cn."""

    basis: torch.Tensor  # buffers (register_buffer), declared for the type checker
    w_out: torch.Tensor
    b_out: torch.Tensor

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        super().__init__()
        basis = weights["stft.forward_basis_buffer"][:, 0, :]  # [258, 256]
        self.register_buffer("basis", torch.from_numpy(np.ascontiguousarray(basis.T)))
        for layer in range(len(STRIDES)):
            w = weights[f"encoder.{layer}.weight"]  # [out, in, 3] → [3 * in, out], tap-major like the unfold
            self.register_buffer(
                f"w{layer}", torch.from_numpy(np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0])))
            )
            self.register_buffer(f"b{layer}", torch.from_numpy(weights[f"encoder.{layer}.bias"].copy()))
        w_ih, w_hh, bias = (weights[k][0] for k in ("onnx::LSTM_209", "onnx::LSTM_210", "onnx::LSTM_211"))
        self.lstm = nn.LSTM(128, 128)
        with torch.no_grad():
            self.lstm.get_parameter("weight_ih_l0").copy_(torch.from_numpy(_onnx_gates_to_torch(w_ih)))
            self.lstm.get_parameter("weight_hh_l0").copy_(torch.from_numpy(_onnx_gates_to_torch(w_hh)))
            self.lstm.get_parameter("bias_ih_l0").copy_(torch.from_numpy(_onnx_gates_to_torch(bias[:512])))
            self.lstm.get_parameter("bias_hh_l0").copy_(torch.from_numpy(_onnx_gates_to_torch(bias[512:])))
        self.register_buffer("w_out", torch.from_numpy(weights["output.weight"][0, :, 0].copy()))
        self.register_buffer("b_out", torch.from_numpy(weights["output.bias"].copy()))

    def _conv(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """conv1d(k=3, pad=1, stride) + ReLU on [frames, T, C] as one matrix product."""
        stride, steps = STRIDES[layer], x.shape[1]
        out_steps = (steps - 1) // stride + 1
        padded = F.pad(x, (0, 0, 1, 1))
        taps = [padded[:, k : k + stride * (out_steps - 1) + 1 : stride] for k in range(3)]
        return torch.relu(torch.cat(taps, dim=2) @ getattr(self, f"w{layer}") + getattr(self, f"b{layer}"))

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        frames = x.shape[0]
        padded = F.pad(x.unsqueeze(1), (HOP, HOP), mode="reflect").squeeze(1)
        # The original keeps STFT frames 1..4: samples [128, 768) of the padded frame, in 5 hops.
        hops = padded[:, HOP : 6 * HOP].reshape(frames, 5, HOP)
        spec = torch.cat([hops[:, :-1], hops[:, 1:]], dim=2) @ self.basis  # [frames, 4, 258]
        bins = spec.shape[2] // 2
        y = torch.sqrt(spec[..., :bins] ** 2 + spec[..., bins:] ** 2)
        for layer in range(len(STRIDES)):
            y = self._conv(y, layer)  # → [frames, 1, 128]
        out, (hn, cn) = self.lstm(y, (h, c))  # the frames are the LSTM's time axis (batch 1)
        probs = torch.sigmoid(torch.relu(out[:, 0]) @ self.w_out + self.b_out)
        return probs, hn, cn
