"""The sections of ``card.json`` (DESIGN §2), as strict pydantic models.

Every model forbids unknown keys, so a misspelt or stale key is an error naming its dotted path
(see ``contracts.card.parse_card``) rather than a silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

DType = Literal["float32", "float16", "int64", "int32", "uint8"]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Strict(BaseModel):
    """No unknown keys; assignments are validated too (export fills ``calibration`` in place)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TensorSpec(Strict):
    """One graph input or output; ``-1`` marks a dynamic axis. Roles: ``waveform`` [B, T] float32,
    ``lengths`` [B] int64 (valid samples per row), ``embedding`` [B, D], ``image``, …"""

    name: str = Field(min_length=1)
    dtype: DType
    shape: list[int]
    role: str = Field(min_length=1)


class AudioSpec(Strict):
    sample_rate: int = Field(ge=8000, le=192000)
    channels: Literal[1] = 1


class VadAudioSpec(AudioSpec):
    """Silero's framing: ``chunk_samples`` per frame after ``context_samples`` of context."""

    chunk_samples: int = Field(gt=0)
    context_samples: int = Field(ge=0)
    frames_per_call: int = Field(gt=0)


class EmbeddingSpec(Strict):
    output: str = Field(min_length=1)
    dim: int = Field(gt=0)
    normalized: bool
    metric: Literal["cosine"] = "cosine"


Point = tuple[float, float]


class Alignment(Strict):
    """How a face chip is cut: the least-squares similarity from ``template`` (``landmarks``' points
    on the unit face square, in their order) placed at ``(padding + t) / (1 + 2·padding) · chip_size``
    to the detected points (dlib's ``get_face_chip_details``). Training cuts its chips the same way."""

    landmarks: Literal["dlib-5"] = "dlib-5"
    template: list[Point] = Field(min_length=2)
    chip_size: int = Field(gt=0)
    padding: float = Field(ge=0.0, le=2.0)


class ImageSpec(Strict):
    """An image input: ``size`` (height, width; ``-1`` for any), layout, dtype, channel order and the
    normalisation the graph applies (a description: it runs inside the graph)."""

    size: tuple[int, int]
    layout: Literal["NCHW", "NHWC"]
    dtype: DType
    channels: Literal["RGB"] = "RGB"
    normalization: str


class FaceImageSpec(ImageSpec):
    """A face embedder's chips: the image spec plus the alignment geometry that makes them."""

    alignment: Alignment

    @model_validator(mode="after")
    def _chip_matches(self) -> FaceImageSpec:
        if self.size != (self.alignment.chip_size, self.alignment.chip_size):
            raise ValueError(f"size {list(self.size)} differs from alignment.chip_size {self.alignment.chip_size}")
        return self


class LandmarksSpec(Strict):
    """A landmark model stored as the ``.npz`` of ``contracts.landmarks_npz``."""

    points: list[str] = Field(min_length=1)
    points_note: str = ""
    format: int = Field(ge=1)
    cascades: int = Field(gt=0)
    trees_per_cascade: int = Field(gt=0)
    tree_depth: int = Field(gt=0)
    features_per_cascade: int = Field(gt=0)
    grey: str


class GeneratorSpec(Strict):
    """An image generator: ``noise`` [B, latent] float32 drawn from N(0, I), and with
    ``conditioning`` ``class`` a ``label`` [B] int64 in 0 … classes−1 (the class to draw), with
    ``latent-block`` a ``label`` [B] naming the latent block that ``noise`` fills (the others zero;
    §7's per-group blocks, ``classes`` = the number of blocks), with ``none`` no label
    (``classes`` 1) → ``image`` [B, height, width] (``channels`` 1) or [B, channels, height,
    width] float32 in [0, 1]."""

    latent_dim: int = Field(gt=0)
    classes: int = Field(ge=1)
    class_names: list[str] = Field(default_factory=list)
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: int = Field(default=1, gt=0)
    conditioning: Literal["class", "latent-block", "none"] = "class"
    noise: Literal["standard-normal"] = "standard-normal"
    output_range: tuple[float, float] = (0.0, 1.0)

    @model_validator(mode="after")
    def _names_match(self) -> GeneratorSpec:
        if self.class_names and len(self.class_names) != self.classes:
            raise ValueError(f"{len(self.class_names)} class_names for {self.classes} classes")
        if (self.conditioning == "none") != (self.classes == 1):
            raise ValueError(
                f"classes {self.classes} with conditioning {self.conditioning!r}: 1 exactly without a label"
            )
        return self


class ShapeRange(Strict):
    min: int = Field(gt=0)
    opt: int = Field(gt=0)
    max: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ShapeRange:
        if not self.min <= self.opt <= self.max:
            raise ValueError(f"expected min <= opt <= max, got {self.min}, {self.opt}, {self.max}")
        return self


class ShapeRanges(Strict):
    """Per dynamic axis (Triton/TensorRT optimisation profiles, serving limits)."""

    batch: ShapeRange | None = None
    samples: ShapeRange | None = None


class ServingHints(Strict):
    max_batch_size: int = Field(default=1, ge=0)
    preferred_batch_sizes: list[int] = Field(default_factory=list)
    max_queue_delay_us: int = Field(default=0, ge=0)


class ImportProvenance(Strict):
    """A third-party model imported from a package that ships its weights."""

    kind: Literal["import"] = "import"
    package: str
    package_version: str
    license: str
    source_file: str
    source_sha256: Sha256
    sha256: Sha256 | None = None  # of the converted file, when it is not ONNX (the landmark .npz)
    parameters: int | None = Field(default=None, gt=0)
    reported_accuracy: str | None = None


class TrainingProvenance(Strict):
    """A model trained here: the run, its recipe (YAML text) and hashes of recipe and data."""

    kind: Literal["training"] = "training"
    run: str
    step: int = Field(ge=0)
    recipe: str
    config_hash: str | None = None
    data_manifest: str | None = None
    data_manifest_sha256: str | None = None
    model: str | None = None
    method: str | None = None
    license: str = "Apache-2.0"
    synthetic: dict[str, JsonValue] | None = None  # the generated corpus's settings, when there was one
    group_by: str | None = None
    formula: str | None = None
    init_from: str | None = None
    classes: list[str] | None = None
    # The run's own evaluation summary (EER, few-shot accuracy, …): a report, read by people.
    eval: dict[str, JsonValue] | None = None


Provenance = Annotated[ImportProvenance | TrainingProvenance, Field(discriminator="kind")]


class ParityCheck(Strict):
    """Worst case over ``cases`` inputs: max |a − b| and min cosine between rows."""

    check: str
    cases: int = Field(gt=0)
    max_abs_diff: float = Field(ge=0.0)
    min_cosine: float


class Parity(Strict):
    """Export's parity checks; ``inputs`` names the real inputs used (speech, photos, cases)."""

    reference: str | None = None
    inputs: list[str] = Field(default_factory=list)
    checks: list[ParityCheck] = Field(min_length=1)


class FarThreshold(Strict):
    far: float = Field(gt=0.0, lt=1.0)
    threshold: float
    frr: float = Field(ge=0.0, le=1.0)


class MinDcf(Strict):
    p_target: float = Field(gt=0.0, lt=1.0)
    value: float
    threshold: float


class GroupEer(Strict):
    """EER per group of test files (``by``: the test channel, the probe class, …)."""

    by: str
    eer: dict[str, float]


class UncalibratedFar(ValueError):
    """A false-accept rate the card has no threshold for; never interpolated."""


class Calibration(Strict):
    """Thresholds measured on a named dev trial list; accept when score >= threshold."""

    dev_trials: str
    n_target: int = Field(ge=0)
    n_nontarget: int = Field(ge=0)
    eer: float = Field(ge=0.0, le=1.0)
    eer_threshold: float
    thresholds: list[FarThreshold] = Field(min_length=1)
    min_dcf: list[MinDcf] = Field(default_factory=list)
    score: Literal["cosine", "as-norm"] = "cosine"  # as-norm: serving/score_norm.py with the card's cohort
    enrollment: str = ""
    pipeline: str | None = None
    refused_files: list[str] = Field(default_factory=list)
    eer_by_group: GroupEer | None = None
    det_plot: str | None = None

    def threshold_for(self, far: float) -> float:
        """The calibrated threshold for ``far``; an uncalibrated FAR is an error, never a guess."""
        for known in self.thresholds:
            if abs(known.far - far) <= 1e-9 * max(1.0, far):
                return known.threshold
        available = ", ".join(f"{t.far:g}" for t in sorted(self.thresholds, key=lambda t: -t.far))
        raise UncalibratedFar(f"target_far {far:g} is not calibrated for this model; choose one of: {available}")


class Cohort(Strict):
    """The AS-norm cohort stored with the version: ``file`` holds [embeddings, dim] float32 unit rows;
    scores are normalised over the ``top_n`` best cohort cosines (``serving/score_norm.py``)."""

    file: str = Field(default="cohort.npy", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.npy$")
    sha256: Sha256
    size_bytes: int = Field(gt=0)
    embeddings: int = Field(gt=0)
    dim: int = Field(gt=0)
    top_n: int = Field(gt=0)
    speakers: int = Field(ge=0)
    built: str = ""  # how: corpus, speaker indices, pipeline


class RobustnessPoint(Strict):
    """Attack success at one (ε, budget) on the summary's trials."""

    eps: float = Field(gt=0.0)
    budget: int = Field(ge=1)
    trials: int = Field(ge=1)
    successes: int = Field(ge=0)
    success_rate: float = Field(ge=0.0, le=1.0)
    median_snr_db: float | None = None  # of the successful perturbations


class Robustness(Strict):
    """The red team's summary (METHODS §3, ``toitsu redteam speaker``): white-box impersonation
    success against the cosine threshold at ``far``; absent in versions exported without it."""

    attack: Literal["lbfgsb", "tanh_lbfgs", "objective_b", "fgsm", "pgd", "adam"] = "lbfgsb"
    threshold: float
    far: float = Field(gt=0.0, lt=1.0)
    kappa: float = Field(ge=0.0)
    dev_trials: str
    points: list[RobustnessPoint] = Field(min_length=1)
    built: str = ""


def tensor(name: str, dtype: DType, shape: list[int], role: str) -> TensorSpec:
    """Shorthand for one entry of a card's ``inputs`` / ``outputs``."""
    return TensorSpec(name=name, dtype=dtype, shape=shape, role=role)
