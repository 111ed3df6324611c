"""Speaker verification evaluation of a torch encoder on utterance-vs-utterance trials.

An encoder follows the waveform contract (``forward(waveform [B, T], lengths [B]) -> [B, D]``).
Whole utterances are embedded in length-sorted padded batches (the contract makes padding
harmless), L2-normalised, and each trial is scored by cosine. The report is the DESIGN §4 one:
EER, minDCF at P_target 0.01 and 0.05, thresholds, and a DET curve PNG.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from training.data.manifest import ManifestRecord
from training.evaluation.verification import plot_det, verification_report


class TrialLike(Protocol):
    """A verification trial (read-only, so frozen dataclasses such as ``UtteranceTrial`` qualify)."""

    @property
    def enroll(self) -> Path: ...
    @property
    def test(self) -> Path: ...
    @property
    def target(self) -> bool: ...


@dataclass(frozen=True)
class UtteranceTrial:
    enroll: Path
    test: Path
    target: bool


def pair_trials(records: Iterable[ManifestRecord], split: str = "heldout") -> list[UtteranceTrial]:
    """Every unordered pair of ``split`` utterances (targets: same identity), deterministic order."""
    chosen = sorted((r for r in records if r.split == split), key=lambda r: str(r.path))
    return [UtteranceTrial(a.path, b.path, a.identity == b.identity) for a, b in itertools.combinations(chosen, 2)]


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 at ``sample_rate`` (polyphase resampling when the file's rate differs)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        g = np.gcd(rate, sample_rate)
        mono = resample_poly(mono, sample_rate // g, rate // g).astype(np.float32)
    return mono


@torch.no_grad()
def embed_paths(
    encoder: torch.nn.Module,
    paths: Sequence[Path],
    *,
    sample_rate: int = 16000,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> dict[Path, np.ndarray]:
    """path → L2-normalised embedding [D]; batches of similar length keep padding small."""
    encoder = encoder.eval().to(device)
    clips = {p: load_audio(p, sample_rate) for p in dict.fromkeys(paths)}
    order = sorted(clips, key=lambda p: len(clips[p]))
    out: dict[Path, np.ndarray] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        lengths = torch.tensor([len(clips[p]) for p in chunk])
        batch = torch.zeros(len(chunk), int(lengths.max()))
        for row, p in enumerate(chunk):
            batch[row, : len(clips[p])] = torch.from_numpy(clips[p])
        vectors = torch.nn.functional.normalize(encoder(batch.to(device), lengths.to(device)).float(), dim=1)
        out.update(zip(chunk, vectors.cpu().numpy()))
    return out


def score_trials(embeddings: dict[Path, np.ndarray], trials: Sequence[TrialLike]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.array([float(embeddings[t.enroll] @ embeddings[t.test]) for t in trials])
    return scores, np.array([bool(t.target) for t in trials])


def evaluate_encoder(
    encoder: torch.nn.Module,
    trials: Sequence[TrialLike],
    out_dir: Path,
    *,
    name: str,
    sample_rate: int = 16000,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Embed, score, and write ``out_dir/report.json`` and ``out_dir/det.png``; returns the report."""
    paths = [p for t in trials for p in (t.enroll, t.test)]
    embeddings = embed_paths(encoder, paths, sample_rate=sample_rate, device=device)
    scores, labels = score_trials(embeddings, trials)
    report = {"name": name, "trials": len(trials), **verification_report(scores, labels).to_dict()}
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_det(out_dir / "det.png", {name: (scores, labels)}, title=f"DET — {name}")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report
