"""Resemblyzer's pretrained GE2E speaker encoder (Apache-2.0) → ONNX in the model repository.

The graph takes a waveform and reproduces ``VoiceEncoder.embed_utterance`` (see
``training/models/ge2e.py``). Parity is measured, recorded in the card and enforced:

- ``mel``: our conv1d front end vs ``resemblyzer.audio.wav_to_mel_spectrogram`` (librosa);
- ``model``: the exported LSTM stack vs Resemblyzer's ``VoiceEncoder`` on the same mel windows
  (max abs diff ≤ 1e-4);
- ``graph``: the whole ONNX graph vs the torch module on random noise and speech (≤ 1e-4);
- ``utterance``: the whole ONNX graph vs ``embed_utterance`` on the same preprocessed waveform,
  real and generated speech (cosine ≥ 0.999);
- ``padding``: a padded batch vs one request at a time (≤ 1e-5).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from contracts.card import SpeakerCard
from contracts.card_sections import (
    AudioSpec,
    EmbeddingSpec,
    ImportProvenance,
    ServingHints,
    ShapeRange,
    ShapeRanges,
    tensor,
)
from contracts.card_sections import Parity as ParitySection
from contracts.waveforms import waveform_batch
from export.card import sha256_file
from export.onnx_export import export_onnx, export_waveform_model
from export.parity import Parity, compare, onnx_session, require, torch_vs_onnx
from training.models.ge2e import GE2EConfig, GE2EEncoder

NAME = "resemblyzer-ge2e"
LICENSE = "Apache-2.0"
MAX_SECONDS = 60


def _voice_encoder():
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Resemblyzer is needed to import its weights: pip install 'toitsu[models]'") from exc
    return VoiceEncoder("cpu", verbose=False)


def load_pretrained() -> GE2EEncoder:
    """Our GE2E module holding Resemblyzer's shipped weights (``resemblyzer/pretrained.pt``)."""
    encoder = GE2EEncoder(GE2EConfig())
    encoder.load_state_dict(_voice_encoder().state_dict(), strict=True)
    return encoder.eval()


def weights_path() -> Path:
    import resemblyzer

    return Path(resemblyzer.__file__).parent / "pretrained.pt"


class _PartialEmbedder(torch.nn.Module):
    """mel windows [N, 160, 40] → [N, 256]: the part of the graph Resemblyzer calls the model."""

    def __init__(self, encoder: GE2EEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed_partials(mels)


def export_graph(encoder: GE2EEncoder, path: Path) -> Path:
    return export_waveform_model(encoder, path)


def measure_parity(encoder: GE2EEncoder, onnx_path: Path, speech: Sequence[np.ndarray]) -> list[Parity]:
    """All parity checks of the module docstring on ``speech`` (16 kHz clips, real and generated)."""
    from resemblyzer import audio, preprocess_wav

    reference = _voice_encoder()
    prepared = [preprocess_wav(x) for x in speech]
    prepared = [x for x in prepared if len(x) >= 1600]
    mels = [audio.wav_to_mel_spectrogram(x) for x in prepared]
    # Flattened so that one cosine covers a whole spectrogram (silent frames have no direction).
    mel_check = compare(
        "mel",
        (
            (m.reshape(1, -1), encoder.mel(torch.from_numpy(x)[None]).detach().numpy().reshape(1, -1))
            for m, x in zip(mels, prepared)
        ),
    )
    windows = [np.ascontiguousarray(_pad_frames(m, 160)[None, :160]) for m in mels]
    with tempfile.TemporaryDirectory() as tmp:
        partial_path = export_onnx(
            _PartialEmbedder(encoder),
            (torch.from_numpy(windows[0]),),
            Path(tmp) / "partial.onnx",
            input_names=["mels"],
            output_names=["embedding"],
            dynamic_axes={"mels": {0: "n"}, "embedding": {0: "n"}},
        )
        partial = onnx_session(partial_path)
        with torch.no_grad():
            model_check = compare(
                "model", ((reference(torch.from_numpy(w)).numpy(), partial.run(None, {"mels": w})[0]) for w in windows)
            )
    rng = np.random.default_rng(0)
    noise = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (8000, 40000, 77777)]
    graph_check = torch_vs_onnx("graph", encoder, onnx_path, (waveform_batch([x]) for x in [*noise, *prepared]))
    session = onnx_session(onnx_path)
    utterance_check = compare(
        "utterance", ((reference.embed_utterance(x), session.run(None, waveform_batch([x]))[0][0]) for x in prepared)
    )
    batch = session.run(None, waveform_batch(prepared))[0]
    single = np.stack([session.run(None, waveform_batch([x]))[0][0] for x in prepared])
    padding_check = compare("padding", [(single, batch)])
    return [
        require(mel_check, min_cosine=0.99999),
        require(model_check, max_abs_diff=1e-4),
        require(graph_check, max_abs_diff=1e-4),
        require(utterance_check, min_cosine=0.999),
        require(padding_check, max_abs_diff=1e-5),
    ]


def _pad_frames(mel: np.ndarray, frames: int) -> np.ndarray:
    return mel if len(mel) >= frames else np.pad(mel, ((0, frames - len(mel)), (0, 0)))


def build_card(version: int, parity: Sequence[Parity], speech_names: Sequence[str]) -> SpeakerCard:
    cfg = GE2EConfig()
    return SpeakerCard(
        name=NAME,
        version=version,
        description="GE2E speaker encoder (3-layer LSTM, 40 mel) from Resemblyzer; whole-utterance "
        "embedding = normalised mean over 1.6 s windows, as VoiceEncoder.embed_utterance.",
        inputs=[tensor("waveform", "float32", [-1, -1], "waveform"), tensor("lengths", "int64", [-1], "lengths")],
        outputs=[tensor("embedding", "float32", [-1, cfg.embedding_dim], "embedding")],
        audio=AudioSpec(sample_rate=cfg.sample_rate, channels=1),
        embedding=EmbeddingSpec(output="embedding", dim=cfg.embedding_dim, normalized=True, metric="cosine"),
        shape_ranges=ShapeRanges(
            samples=ShapeRange(min=cfg.hop, opt=3 * cfg.sample_rate, max=MAX_SECONDS * cfg.sample_rate),
            batch=ShapeRange(min=1, opt=8, max=16),
        ),
        serving=ServingHints(max_batch_size=16, preferred_batch_sizes=[4, 8, 16], max_queue_delay_us=2000),
        provenance=ImportProvenance(
            package="resemblyzer",
            package_version=metadata.version("resemblyzer"),
            license=LICENSE,
            source_file="resemblyzer/pretrained.pt",
            source_sha256=sha256_file(weights_path()),
        ),
        parity=ParitySection(
            reference="resemblyzer.VoiceEncoder.embed_utterance (torch, CPU)",
            inputs=list(speech_names),
            checks=[p.card_check() for p in parity],
        ),
    )
