"""The model card, ``models/<name>/<version>/card.json``: the one contract between export and
serving (DESIGN §2). Export writes it only through ``write_card``; serving reads it only through
``load_card``; nothing reads it as an untyped dict.

One typed card per modality, told apart by ``modality``:

- ``speaker`` / ``sound``: waveform [B, T] float32 + lengths [B] int64 → embedding [B, D];
- ``face``: aligned RGB chips → [B, D], with the alignment geometry that cut them;
- ``face-detector``: one MTCNN stage (the pyramid and NMS run in the gateway);
- ``face-landmarks``: dlib's 5-point model as a ``.npz`` (``contracts.landmarks_npz``);
- ``vad``: Silero VAD's sequence graph;
- ``generator``: a class-conditional image decoder, noise [B, Z] + label [B] → image [B, H, W].

A new kind (a fusion card for audio-visual persons) is one more class here with
its own ``modality`` literal, added to ``ModelCard``; the committed JSON Schema
(``contracts/card.schema.json``, ``python -m contracts.schema``) is regenerated and a test fails
until it is.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from contracts.atomic import write_text_atomic
from contracts.card_sections import (
    AudioSpec,
    Calibration,
    Cohort,
    EmbeddingSpec,
    FaceImageSpec,
    GeneratorSpec,
    ImageSpec,
    LandmarksSpec,
    Parity,
    Provenance,
    ServingHints,
    ShapeRanges,
    Strict,
    TensorSpec,
    VadAudioSpec,
)

SCHEMA_VERSION: Literal[2] = 2
CARD_FILE = "card.json"
EMBEDDING_MODALITIES = ("speaker", "face", "sound")


class CardError(ValueError):
    """A card is missing or malformed; the model cannot be served. Names the dotted path."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class CardBase(Strict):
    """The header every card has, and read-only views the gateway uses on any card."""

    schema_version: Literal[2] = Field(default=SCHEMA_VERSION, alias="schema")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: int = Field(ge=1)
    file: str = "model.onnx"
    created_at: str = Field(default_factory=_now)
    description: str = ""
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    provenance: Provenance
    parity: Parity | None = None
    serving: ServingHints = Field(default_factory=ServingHints)
    shape_ranges: ShapeRanges | None = None

    model_config = Strict.model_config | {"populate_by_name": True}

    def input_with_role(self, role: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.role == role), None)

    @property
    def sample_rate(self) -> int | None:
        audio = getattr(self, "audio", None)
        return audio.sample_rate if audio is not None else None

    @property
    def embedding_spec(self) -> EmbeddingSpec | None:
        return getattr(self, "embedding", None)

    @property
    def embedding_dim(self) -> int | None:
        spec = self.embedding_spec
        return spec.dim if spec is not None else None

    @property
    def embedding_output(self) -> str | None:
        spec = self.embedding_spec
        return spec.output if spec is not None else None

    @property
    def max_batch_size(self) -> int:
        return self.serving.max_batch_size

    @property
    def calibration_section(self) -> Calibration | None:
        return getattr(self, "calibration", None)

    @property
    def license(self) -> str:
        return self.provenance.license


class EmbeddingCard(CardBase):
    embedding: EmbeddingSpec
    calibration: Calibration | None = None  # absent only while export stages the version
    # AS-norm (serving/score_norm.py): the cohort and the thresholds for normalised scores; absent
    # in versions exported before it, which then serve cosine scoring only.
    cohort: Cohort | None = None
    calibration_as_norm: Calibration | None = None


class SpeakerCard(EmbeddingCard):
    modality: Literal["speaker"] = "speaker"
    audio: AudioSpec


class SoundCard(EmbeddingCard):
    modality: Literal["sound"] = "sound"
    audio: AudioSpec


class FaceCard(EmbeddingCard):
    modality: Literal["face"] = "face"
    image: FaceImageSpec


class FaceDetectorCard(CardBase):
    modality: Literal["face-detector"] = "face-detector"
    image: ImageSpec


class FaceLandmarksCard(CardBase):
    modality: Literal["face-landmarks"] = "face-landmarks"
    landmarks: LandmarksSpec


class VadCard(CardBase):
    modality: Literal["vad"] = "vad"
    audio: VadAudioSpec


class GeneratorCard(CardBase):
    """A trained decoder (METHODS §6): noise + class id → image; not served by the gateway's
    embedding services, published so that it can be listed, versioned and run elsewhere."""

    modality: Literal["generator"] = "generator"
    generator: GeneratorSpec


ModelCard = Annotated[
    SpeakerCard | SoundCard | FaceCard | FaceDetectorCard | FaceLandmarksCard | VadCard | GeneratorCard,
    Field(discriminator="modality"),
]
AnyCard = SpeakerCard | SoundCard | FaceCard | FaceDetectorCard | FaceLandmarksCard | VadCard | GeneratorCard
CARD_ADAPTER: TypeAdapter[AnyCard] = TypeAdapter(ModelCard)


def _path(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as a dotted path (list indices as ``[i]``), without the tag."""
    parts = list(loc)
    if parts and parts[0] in _TAGS:  # the discriminated union's own level
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(card)"


_TAGS = {"speaker", "sound", "face", "face-detector", "face-landmarks", "vad", "generator"}


def parse_card(raw: Any, source: str = "card") -> AnyCard:
    """Validate a decoded ``card.json``; every problem is reported with its dotted path."""
    if isinstance(raw, dict) and raw.get("schema") != SCHEMA_VERSION:
        raise CardError(
            f"{source}: schema: card schema {raw.get('schema')!r} is not supported "
            f"(expected {SCHEMA_VERSION}); rebuild the model with `toitsu export` or `make models`"
        )
    try:
        return CARD_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CardError(f"{source}: {problems}") from None


def load_card(version_dir: Path) -> AnyCard:
    """The card of a model version folder (``CardError`` naming the file and the path)."""
    path = Path(version_dir) / CARD_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CardError(f"{path}: {exc}") from exc
    return parse_card(raw, str(path))


def card_json(card: AnyCard) -> dict[str, Any]:
    """The card as the JSON object ``card.json`` holds (``schema`` first, unset options left out)."""
    return card.model_dump(mode="json", by_alias=True, exclude_none=True)


def write_card(version_dir: Path, card: AnyCard) -> Path:
    """Validate again (a card assembled field by field) and write it atomically."""
    data = card_json(card)
    parse_card(data, f"{version_dir / CARD_FILE} (being written)")
    path = Path(version_dir) / CARD_FILE
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    return path
