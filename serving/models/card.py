"""The gateway's reader of ``card.json`` (schema 1, written by ``export/card.py``).

The card is everything the gateway knows about a model: it never guesses an input rate, an
embedding size or a threshold. A card that lacks what its modality needs is refused at load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.errors import InvalidInput

SUPPORTED_SCHEMA = 1
EMBEDDING_MODALITIES = ("speaker", "face", "sound")


class CardError(ValueError):
    """A card is missing or malformed; the model cannot be served."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    role: str


@dataclass(frozen=True)
class Calibration:
    """Thresholds measured on a named dev trial list; accept when score >= threshold."""

    dev_trials: str
    eer: float
    eer_threshold: float
    thresholds: dict[float, float]  # target FAR → threshold
    n_target: int = 0
    n_nontarget: int = 0
    min_dcf: tuple[dict[str, float], ...] = ()

    def threshold_for(self, far: float) -> float:
        """The calibrated threshold for ``far``; an uncalibrated FAR is an error, never a guess."""
        for known, threshold in self.thresholds.items():
            if abs(known - far) <= 1e-9 * max(1.0, far):
                return threshold
        available = ", ".join(f"{f:g}" for f in sorted(self.thresholds, reverse=True))
        raise InvalidInput(f"target_far {far:g} is not calibrated for this model; choose one of: {available}")


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: int
    modality: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sample_rate: int | None = None
    embedding_dim: int | None = None
    embedding_output: str | None = None
    normalized: bool = False
    calibration: Calibration | None = None
    max_batch_size: int = 1
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def input_with_role(self, role: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.role == role), None)

    @classmethod
    def load(cls, version_dir: Path) -> "ModelCard":
        path = version_dir / "card.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(raw)
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CardError(f"{path}: {exc}") from exc

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ModelCard":
        if raw.get("schema") != SUPPORTED_SCHEMA:
            raise CardError(f"card schema {raw.get('schema')!r} is not supported (expected {SUPPORTED_SCHEMA})")
        embedding = raw.get("embedding") or {}
        card = cls(
            name=str(raw["name"]),
            version=int(raw["version"]),
            modality=str(raw["modality"]),
            file=str(raw.get("file", "model.onnx")),
            inputs=tuple(_tensor(t) for t in raw["inputs"]),
            outputs=tuple(_tensor(t) for t in raw["outputs"]),
            sample_rate=(raw.get("audio") or {}).get("sample_rate"),
            embedding_dim=embedding.get("dim"),
            embedding_output=embedding.get("output"),
            normalized=bool(embedding.get("normalized", False)),
            calibration=_calibration(raw.get("calibration")),
            max_batch_size=int((raw.get("serving") or {}).get("max_batch_size", 1)),
            raw=raw,
        )
        if card.modality in EMBEDDING_MODALITIES and (card.embedding_dim is None or card.embedding_output is None):
            raise CardError(f"{card.name} v{card.version}: an embedding model's card needs embedding.dim and .output")
        return card


def _tensor(raw: dict[str, Any]) -> TensorSpec:
    return TensorSpec(str(raw["name"]), str(raw["dtype"]), tuple(int(d) for d in raw["shape"]), str(raw.get("role", "")))


def _calibration(raw: dict[str, Any] | None) -> Calibration | None:
    if not raw:
        return None
    return Calibration(
        dev_trials=str(raw["dev_trials"]),
        eer=float(raw["eer"]),
        eer_threshold=float(raw["eer_threshold"]),
        thresholds={float(t["far"]): float(t["threshold"]) for t in raw["thresholds"]},
        n_target=int(raw.get("n_target", 0)),
        n_nontarget=int(raw.get("n_nontarget", 0)),
        min_dcf=tuple(raw.get("min_dcf", ())),
    )
