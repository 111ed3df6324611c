"""The red team's real-model adapter: a served speaker version → its torch twin and attack trials.

Why the project's own modules, not onnx2torch. The served speaker models have twins in this
repository that *are* what was exported: ``export.importers.campplus.load_pretrained()`` and
``export.importers.resemblyzer_ge2e.load_pretrained()`` build ``training.models.campplus`` /
``training.models.ge2e`` holding the shipped weights strictly, and the export traced exactly those
modules into ``model.onnx``; the card's ``parity`` section records the ONNX graph against them
(``graph`` check, max |Δ| ≤ 1e-4, waveform in). So an attack on the twin is an attack on the served
graph, front end included (Kaldi fbank / log-mel as differentiable convolutions). A graph rebuilt
by onnx2torch would need its own parity checks, and its converted STFT/fbank ops are not
guaranteed to carry gradients to the waveform. Before a twin is used, the weights file it loads is
hashed and compared with the card's ``provenance.source_sha256``, so a twin can never silently
hold other weights than the version it claims to attack.

What the twin leaves out: the gateway's VAD, which only cuts silence (a selection, no gradient).
The perturbation lives on the 16 kHz float waveform the gateway decodes, clipped to [−1, 1].

This module is in export/ because training/ may not import export/ (the layering contract) and the
twins' loaders live here; ``training.redteam`` holds the attacks, model-agnostic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contracts.card import AnyCard, CardError, SpeakerCard, load_card
from contracts.trials import DevTrials
from export.card import sha256_file
from export.redteam_ranges import DEFAULT_FAR
from export.repository import versions
from training.redteam.oracle import Encoder, Trial


class RedTeamError(ValueError):
    """Bad input to the red team: unknown model, not a speaker model, no torch twin, bad ranges."""


@dataclass(frozen=True)
class TwinSource:
    load: Callable[[], nn.Module]  # waveform [B, T] + lengths [B] → [B, D]
    weights: Callable[[], Path]  # the file whose sha256 the card's provenance records


def _twins() -> dict[str, TwinSource]:
    from export.importers import campplus, resemblyzer_ge2e

    return {
        campplus.NAME: TwinSource(campplus.load_pretrained, campplus.weights_path),
        resemblyzer_ge2e.NAME: TwinSource(resemblyzer_ge2e.load_pretrained, resemblyzer_ge2e.weights_path),
    }


@dataclass(frozen=True)
class SpeakerTwin:
    name: str
    version: int
    card: SpeakerCard
    module: nn.Module
    tau: float
    far: float

    @property
    def encoder(self) -> Encoder:
        return module_encoder(self.module)


def module_encoder(module: nn.Module) -> Encoder:
    """waveform [T] → embedding [D] through a ``(waveform [B, T], lengths [B])`` module."""

    def encode(waveform: torch.Tensor) -> torch.Tensor:
        return module(waveform[None], torch.tensor([waveform.numel()]))[0]

    return encode


def parse_spec(spec: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:VERSION``."""
    name, sep, version = spec.partition(":")
    if not name or (sep and not version.isdigit()):
        raise RedTeamError(f"--model must be NAME or NAME:VERSION, got {spec!r}")
    return name, int(version) if sep else None


def resolve_card(models_dir: Path, spec: str) -> AnyCard:
    """The card of ``NAME[:VERSION]`` (newest version without one) in the model repository."""
    name, version = parse_spec(spec)
    found = versions(models_dir, name)
    if not found:
        raise RedTeamError(f"no model {name!r} in {models_dir}")
    if version is None:
        version = found[-1]
    if version not in found:
        raise RedTeamError(f"{name} has no version {version} in {models_dir} (versions: {found})")
    try:
        return load_card(models_dir / name / str(version))
    except CardError as exc:
        raise RedTeamError(str(exc)) from None


def threshold(card: SpeakerCard, far: float = DEFAULT_FAR) -> float:
    if card.calibration is None:
        raise RedTeamError(f"{card.name} v{card.version} has no calibration (no threshold τ to attack)")
    try:
        return card.calibration.threshold_for(far)
    except ValueError as exc:
        raise RedTeamError(str(exc)) from None


def load_twin(models_dir: Path, spec: str, far: float = DEFAULT_FAR) -> SpeakerTwin:
    """The torch twin of a served speaker version, checked against its card (weights hash, threshold)."""
    card = resolve_card(models_dir, spec)
    if not isinstance(card, SpeakerCard):
        raise RedTeamError(f"{card.name} v{card.version} is a {card.modality} model; the red team attacks speakers")
    source = _twins().get(card.name)
    if source is None:
        raise RedTeamError(
            f"{card.name} v{card.version} has no torch twin (known: {', '.join(sorted(_twins()))}); "
            "attack it through a gateway instead (--target)"
        )
    recorded = getattr(card.provenance, "source_sha256", None)
    actual = sha256_file(source.weights())
    if recorded != actual:
        raise RedTeamError(
            f"{card.name} v{card.version}: the twin's weights ({actual[:12]}…) are not the version's "
            f"({str(recorded)[:12]}…); re-export the model"
        )
    tau = threshold(card, far)
    module = source.load().eval()
    for p in module.parameters():
        p.requires_grad_(False)  # gradients w.r.t. the waveform only
    return SpeakerTwin(card.name, card.version, card, module, tau, far)


def _read(path: Path, max_samples: int) -> torch.Tensor:
    import soundfile as sf

    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != 16000:
        raise RedTeamError(f"{path}: {rate} Hz; the speaker models take 16 kHz")
    return torch.from_numpy(np.ascontiguousarray(samples.mean(axis=1)[:max_samples]))


def impostor_trials(
    encoder: Encoder, dev: DevTrials, count: int, seed: int = 0, max_seconds: float = 2.0
) -> list[Trial]:
    """``count`` non-target trials of ``dev``, seeded, each probe from a different enrolled target.

    The target is the L2-normalised mean of the twin's embeddings of the target's enrollment files
    (the gateway's enrollment); probes are cut to ``max_seconds`` (an attacker's recording of its
    own choosing, and a bounded cost per gradient evaluation).
    """
    impostors = sorted((t for t in dev.trials if not t.target), key=lambda t: (t.speaker, str(t.test)))
    if not impostors:
        raise RedTeamError(f"{dev.name} has no non-target trials")
    order = np.random.default_rng(seed).permutation(len(impostors))
    picked, speakers = [], set()
    for i in order:
        trial = impostors[int(i)]
        if trial.speaker not in speakers:
            picked.append(trial)
            speakers.add(trial.speaker)
        if len(picked) == count:
            break
    limit = int(max_seconds * 16000)
    out = []
    with torch.no_grad():
        for trial in picked:
            enrolled = torch.stack([encoder(_read(p, 60 * 16000)) for p in dev.enrollments[trial.speaker]])
            target = torch.nn.functional.normalize(torch.nn.functional.normalize(enrolled, dim=-1).mean(0), dim=0)
            out.append(Trial(_read(trial.test, limit), target))
    return out
