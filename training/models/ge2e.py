"""The GE2E speaker encoder (Wan et al., 2018) as Resemblyzer ships it, with its front end and
its whole-utterance embedding procedure inside the module, so that the exported graph takes a
waveform.

Resemblyzer embeds an utterance by (1) raising its volume to -30 dBFS (never lowering it),
(2) computing a 40-band power mel spectrogram (25 ms / 10 ms), (3) cutting it into 1.6 s
partial windows every ``round(16000 / 1.3 / 160)`` = 77 frames, dropping the last window when
it covers less than 75 % of real audio, (4) embedding each window with a 3-layer LSTM, a
linear layer, ReLU and L2 normalisation, and (5) averaging and re-normalising. Steps 1-5 are
reproduced here for a padded batch: ``lengths`` says how many samples of each row are real, the
rest is zeroed, and windows past a row's own count are masked out of its mean, so padding never
changes an embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.frontends.mel import MelSpectrogram

INT16_MAX = 32767.0


@dataclass(frozen=True)
class GE2EConfig:
    """Resemblyzer's hyper-parameters (``resemblyzer/hparams.py``)."""

    sample_rate: int = 16000
    n_mels: int = 40
    window_ms: int = 25
    hop_ms: int = 10
    hidden: int = 256
    layers: int = 3
    embedding_dim: int = 256
    partial_frames: int = 160  # 1.6 s
    partials_per_second: float = 1.3
    min_coverage: float = 0.75
    target_dbfs: float = -30.0

    @property
    def hop(self) -> int:
        return self.sample_rate * self.hop_ms // 1000

    @property
    def frame_step(self) -> int:
        return int(round(self.sample_rate / self.partials_per_second / self.hop))


class GE2EEncoder(nn.Module):
    """waveform [B, T] float32 at 16 kHz + lengths [B] int64 → embeddings [B, 256], L2-normalised."""

    def __init__(self, config: GE2EConfig = GE2EConfig()) -> None:
        super().__init__()
        self.config = config
        n_fft = config.sample_rate * config.window_ms // 1000
        self.mel = MelSpectrogram(config.sample_rate, n_fft, config.hop, config.n_mels)
        # Parameter names match Resemblyzer's state dict so its checkpoint loads as is.
        self.lstm = nn.LSTM(config.n_mels, config.hidden, config.layers, batch_first=True)
        self.linear = nn.Linear(config.hidden, config.embedding_dim)

    def embed_partials(self, mels: torch.Tensor) -> torch.Tensor:
        """mel windows [N, frames, n_mels] → [N, dim] (Resemblyzer's ``VoiceEncoder.forward``)."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        batch, samples = waveform.shape
        valid = torch.arange(samples, device=waveform.device)[None, :] < lengths[:, None]
        wav = self._normalize_volume(waveform * valid.to(waveform.dtype), lengths)
        # Zero padding of one window past the end covers every window Resemblyzer may take.
        frames = self.mel(F.pad(wav, (0, cfg.partial_frames * cfg.hop)))
        counts = self._partial_counts(lengths)
        n_max = counts.max().to(torch.int64)
        # torch.arange takes a 0-d tensor (kept symbolic in the ONNX export); its stubs say numbers only.
        starts = torch.arange(n_max, device=wav.device) * cfg.frame_step  # type: ignore[call-overload]
        index = (starts[:, None] + torch.arange(cfg.partial_frames, device=wav.device)[None, :]).reshape(-1)
        windows = frames.index_select(1, index).reshape(-1, cfg.partial_frames, cfg.n_mels)
        partials = self.embed_partials(windows).reshape(batch, -1, cfg.embedding_dim)
        slots = torch.arange(n_max, device=wav.device)  # type: ignore[call-overload]  # a 0-d tensor, as above
        mask = (slots[None, :] < counts[:, None]).to(partials.dtype)
        mean = (partials * mask[:, :, None]).sum(1) / counts[:, None].to(partials.dtype)
        return mean / torch.norm(mean, dim=1, keepdim=True)

    def _normalize_volume(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Raise each row to ``target_dbfs`` RMS (over its real samples); never lower it."""
        rms = torch.sqrt((wav * INT16_MAX).pow(2).sum(1) / lengths.to(wav.dtype))
        change_db = self.config.target_dbfs - 20.0 * torch.log10(rms / INT16_MAX)
        gain = torch.where(change_db > 0, torch.pow(10.0, change_db / 20.0), torch.ones_like(change_db))
        return wav * gain[:, None]

    def _partial_counts(self, lengths: torch.Tensor) -> torch.Tensor:
        """Number of windows ``compute_partial_slices`` takes for each row, float [B]."""
        cfg = self.config
        n = lengths.to(torch.float32)
        n_frames = torch.ceil((n + 1) / cfg.hop)
        steps = torch.clamp(n_frames - cfg.partial_frames + cfg.frame_step + 1, min=1)
        count = torch.ceil(steps / cfg.frame_step)
        last_start = (count - 1) * cfg.frame_step * cfg.hop
        coverage = (n - last_start) / (cfg.partial_frames * cfg.hop)
        return torch.where((coverage < cfg.min_coverage) & (count > 1), count - 1, count)
