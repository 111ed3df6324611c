"""A trained waveform encoder (speaker or sound) → a model-repository version (DESIGN §5), through
the one export pipeline (``export/pipeline.py``).

ONNX with dynamic batch and length (inputs ``waveform`` [B, T], ``lengths`` [B]; output the
L2-normalised ``embedding`` [B, D]) → parity against torch on random input and on real and
generated speech (max abs diff ≤ 1e-4, fail above), and padded batch vs single rows → card
with provenance (recipe, its hash, the data manifest's hash, run and step) → calibration on
the dev trial list through the gateway's pipeline → published as the next version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from contracts.card import SoundCard, SpeakerCard
from contracts.card_sections import (
    AudioSpec,
    EmbeddingSpec,
    ServingHints,
    ShapeRange,
    ShapeRanges,
    TrainingProvenance,
    tensor,
)
from contracts.card_sections import (
    Parity as ParitySection,
)
from contracts.waveforms import waveform_batch
from export.importers.real_speech import load_real_speech
from export.importers.silero_vad import NAME as VAD_NAME
from export.onnx_export import export_waveform_model
from export.parity import Parity, compare, require, torch_vs_onnx
from export.pipeline import export_version
from export.repository import next_version, versions
from export.speaker_dev import EmbedderFactory, dev_trials, generated_clips, speaker_calibrator

MAX_ABS_DIFF = 1e-4
MAX_SECONDS = 60


class NormalizedEncoder(nn.Module):
    """The served form of an encoder: waveform [B, T] + lengths [B] → unit-length [B, D]."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.encoder(waveform, lengths), dim=1)


def measure_parity(model: nn.Module, onnx_path: Path, speech: list[np.ndarray]) -> list[Parity]:
    """torch vs ONNX on random noise and speech (single and padded batches), and padding itself."""
    rng = np.random.default_rng(0)
    noise = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (16000, 40000, 23457)]
    feeds = [waveform_batch([x]) for x in [*noise, *speech]] + [waveform_batch(noise), waveform_batch(speech)]
    graph = torch_vs_onnx("graph", model, onnx_path, feeds)
    with torch.no_grad():
        batch = model(*(torch.from_numpy(v) for v in waveform_batch(speech).values())).numpy()
        single = np.stack(
            [model(*(torch.from_numpy(v) for v in waveform_batch([x]).values()))[0].numpy() for x in speech]
        )
    return [
        require(graph, max_abs_diff=MAX_ABS_DIFF),
        require(compare("padding", [(single, batch)]), max_abs_diff=1e-5),
    ]


def export_encoder(encoder: nn.Module, path: Path, sample_rate: int) -> Path:
    return export_waveform_model(NormalizedEncoder(encoder).eval(), path, sample_rate)


def build_card(
    name: str,
    version: int,
    dim: int,
    sample_rate: int,
    provenance: TrainingProvenance,
    parity: list[Parity],
    clip_names: list[str],
    *,
    modality: Literal["speaker", "sound"] = "speaker",
) -> SpeakerCard | SoundCard:
    """The card of a trained waveform encoder (speaker by default; sound runs pass ``modality``)."""
    card_type = SpeakerCard if modality == "speaker" else SoundCard
    return card_type(
        name=name,
        version=version,
        description=f"{provenance.model or f'{modality} encoder'} trained by toitsu ({provenance.method or ''})",
        inputs=[tensor("waveform", "float32", [-1, -1], "waveform"), tensor("lengths", "int64", [-1], "lengths")],
        outputs=[tensor("embedding", "float32", [-1, dim], "embedding")],
        audio=AudioSpec(sample_rate=sample_rate),
        embedding=EmbeddingSpec(output="embedding", dim=dim, normalized=True),
        shape_ranges=ShapeRanges(
            samples=ShapeRange(min=sample_rate // 10, opt=3 * sample_rate, max=MAX_SECONDS * sample_rate),
            batch=ShapeRange(min=1, opt=8, max=16),
        ),
        serving=ServingHints(max_batch_size=16, preferred_batch_sizes=[4, 8, 16], max_queue_delay_us=2000),
        provenance=provenance,
        parity=ParitySection(
            reference="the trained torch module (CPU)", inputs=clip_names, checks=[p.card_check() for p in parity]
        ),
    )


def export_run(
    run_dir: Path,
    models_dir: Path,
    work_dir: Path,
    embedder_factory: EmbedderFactory,
    *,
    name: str | None = None,
    robustness: bool = False,
) -> Path:
    """Export a speaker run's encoder as the next version of ``name``, calibrated through the
    gateway's audio pipeline (with the repository's VAD); returns its folder. The red team's summary
    goes in the card with ``robustness`` or the recipe's ``export_robustness: true`` (the way a
    ModelService export asks for it)."""
    from training.recipes.speaker import load_trained_encoder

    trained = load_trained_encoder(run_dir)
    name = name or trained.export_name
    version = next_version(models_dir, name)
    vad_versions = versions(models_dir, VAD_NAME)
    if not vad_versions:
        raise FileNotFoundError(f"{models_dir} has no {VAD_NAME}; run `make models` first")
    dev, dev_dir = dev_trials(work_dir)
    vad_dir = models_dir / VAD_NAME / str(vad_versions[-1])

    def stage(staged: Path) -> SpeakerCard | SoundCard:
        onnx_path = export_encoder(trained.encoder, staged / "model.onnx", trained.sample_rate)
        real = load_real_speech()
        speech = [x for x, rate in real.values() if rate == trained.sample_rate] + generated_clips(dev, 6)
        print(f"{name} v{version}: exported from {run_dir} (step {trained.step}); parity on {len(speech)} clips")
        parity = measure_parity(NormalizedEncoder(trained.encoder).eval(), onnx_path, speech)
        return build_card(
            name,
            version,
            trained.embedding_dim,
            trained.sample_rate,
            TrainingProvenance(**trained.provenance),
            parity,
            [*real, f"6 clips of {dev.name}"],
        )

    calibrate = speaker_calibrator(embedder_factory, dev, dev_dir, vad_dir)
    if robustness or trained.export_robustness:
        from export.redteam_run import with_robustness

        calibrate = with_robustness(calibrate, NormalizedEncoder(trained.encoder), dev)
    return export_version(models_dir, name, version, stage, calibrate)
