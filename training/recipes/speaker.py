"""Speaker recipes (METHODS §1-2): the schema of a speaker recipe and how its parts compose.

A recipe names the data, the sampler, the encoder, the method and the trainer; the supervised,
semi-supervised and unsupervised GCL recipes differ only in ``sampler.mode`` (hence only in the
target matrix, see ``training/methods/generalized_contrastive.py``), meta-training sets use
episodes, and AAM-softmax is the supervised classification baseline::

    toitsu train recipes/speaker/synthetic-gcl-semi.yaml trainer.steps=300

Runs write into ``run_dir``: ``recipe.yaml``, ``checkpoints/``, ``metrics.jsonl``, ``tb/``,
``run.json`` (provenance: recipe hash, data manifest hash, result) and ``eval/`` (report.json,
det.png) on held-out speakers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch import nn

from training.data.manifest import ManifestRecord, read_manifest
from training.trainer.config import TrainerConfig

if TYPE_CHECKING:
    from training.models import Encoder

Method = Literal["gcl", "ap", "aam", "meta"]


@dataclass(frozen=True)
class SyntheticCorpus:
    """``training.data.speech_corpus.build_speech_corpus`` arguments (built once, then cached)."""

    out: str = "build/speech-corpus"
    n_speakers: int = 240
    utterances_per_speaker: int = 8
    seed: int = 0
    heldout_fraction: float = 0.2
    # A channel per utterance, so that speaker and channel are not the same thing (and a random
    # network cannot pass for a speaker model by telling clean TTS voices apart).
    effects: tuple[str, ...] = ("clean", "telephone", "noise_snr20", "noise_snr10", "reverb")


@dataclass(frozen=True)
class DataSection:
    """Either a manifest (``train``/``heldout`` splits, e.g. from ``toitsu data voxceleb``) or a
    synthetic corpus; ``trials`` optionally names an official trial list for evaluation."""

    manifest: str | None = None
    synthetic: SyntheticCorpus | None = None
    sample_rate: int = 16000
    cache_audio: bool = True
    trials: str | None = None  # e.g. a veri_test2.txt; evaluation uses held-out pairs otherwise
    trials_root: str | None = None  # the wav root the trial list's paths are relative to
    max_eval_trials: int = 200_000

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.synthetic is None):
            raise ValueError("set exactly one of data.manifest and data.synthetic")


@dataclass(frozen=True)
class SamplerSection:
    mode: Literal["unsupervised", "supervised", "semi"] = "unsupervised"
    pairs_per_batch: int = 200
    crop_seconds: float = 2.0
    labelled_fraction: float = 0.15
    speakers_per_episode: int = 100  # meta-training episodes (METHODS §2: K, S, Q)
    support: int = 2
    query: int = 1


@dataclass(frozen=True)
class SpeakerRecipe:
    trainer: TrainerConfig
    data: DataSection
    model: dict[str, Any]  # {name: ecapa_tdnn | resnet34, ...constructor arguments}
    method: dict[str, Any]  # {name: gcl | ap | aam | meta, ...loss constructor arguments}
    sampler: SamplerSection = field(default_factory=SamplerSection)
    augment: dict[str, Any] | None = None  # Augmenter fields; null = no augmentation
    export_name: str = "toitsu-speaker"
    export_robustness: bool = False  # export adds the red team's summary to the card (a few CPU minutes)


@dataclass(frozen=True)
class TrainedEncoder:
    """What ``toitsu export`` needs from a run."""

    encoder: nn.Module
    sample_rate: int
    embedding_dim: int
    step: int
    export_name: str
    provenance: dict[str, Any]
    export_robustness: bool = False


def manifest_records(data: DataSection) -> tuple[list[ManifestRecord], Path]:
    """The data's manifest records and the manifest path (building a synthetic corpus if asked)."""
    if data.synthetic is not None:
        from training.data.speech_corpus import build_speech_corpus

        s = data.synthetic
        path = Path(
            build_speech_corpus(
                s.out,
                s.n_speakers,
                s.utterances_per_speaker,
                s.seed,
                sample_rate=data.sample_rate,
                heldout_fraction=s.heldout_fraction,
                effects=s.effects,
            )
        )
    else:
        assert data.manifest is not None  # DataSection holds exactly one of the two
        path = Path(data.manifest)
    return read_manifest(path), path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_encoder(recipe: SpeakerRecipe) -> Encoder:
    from training.models import build_speaker_encoder

    kwargs = dict(recipe.model)
    return build_speaker_encoder(kwargs.pop("name"), **kwargs)


def load_trained_encoder(run_dir: Path) -> TrainedEncoder:
    """The encoder of a finished (or checkpointed) run, in eval mode, with its provenance."""
    from training.recipes.config import load_recipe
    from training.trainer.checkpoint import latest_checkpoint, load_checkpoint

    recipe = load_recipe(run_dir / "recipe.yaml", schema=SpeakerRecipe)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint to export")
    state = load_checkpoint(checkpoint)
    encoder = build_encoder(recipe)
    encoder.load_state_dict(state["modules"]["encoder"])
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    provenance = {
        "kind": "training",
        "run": str(run_dir),
        "step": state["step"],
        "recipe": (run_dir / "recipe.yaml").read_text(),
        "config_hash": run.get("recipe_hash"),
        "data_manifest": run.get("data_manifest"),
        "data_manifest_sha256": run.get("data_manifest_sha256"),
        "model": recipe.model.get("name"),
        "method": recipe.method.get("name"),
        "license": "Apache-2.0",
    }
    return TrainedEncoder(
        encoder.eval(),
        recipe.data.sample_rate,
        int(encoder.embedding_dim),
        int(state["step"]),
        recipe.export_name,
        provenance,
        recipe.export_robustness,
    )
