"""Gateway configuration: defaults < config file (TOML) < environment < command-line flags.

Every setting is ``section.key``. In a file it is ``[section] key = value``; in the environment
``TOITSU_SECTION__KEY=value`` (e.g. ``TOITSU_SERVER__PORT=50052``); on the command line
``--set section.key=value`` (plus shortcuts such as ``--port``). Unknown sections or keys are
errors, so a typo never silently leaves a default in place.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.audio.pipeline import AudioLimits
from serving.gallery import GalleryConfig
from serving.inference.batcher import BatchingConfig
from serving.scoring import SCORINGS

ENV_PREFIX = "TOITSU_"
BACKENDS = ("onnxruntime", "triton")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


@dataclass(frozen=True)
class ServerSection:
    host: str = "127.0.0.1"
    port: int = 50051
    metrics_port: int = 9464  # Prometheus /metrics on metrics_host:metrics_port; 0 turns it off
    # Loopback by default, whatever `host` is: metrics name models and gallery sizes, and a scraper
    # on another machine is an explicit choice (set "0.0.0.0" or an interface address).
    metrics_host: str = "127.0.0.1"
    max_workers: int = 16  # gRPC handler threads
    max_concurrent_rpcs: int = 64  # beyond this, RESOURCE_EXHAUSTED
    max_message_mb: float = 16.0  # inbound message limit; larger → RESOURCE_EXHAUSTED
    grace_seconds: float = 10.0  # in-flight RPCs get this long on SIGTERM
    default_deadline_seconds: float = 30.0  # applied when a client sends none
    inference_threads: int = 0  # ONNX Runtime intra-op threads per call; 0 = cores / batching.workers
    health_interval_seconds: float = 1.0  # how often the backend's readiness is polled into health
    load_retry_seconds: float = 2.0  # retry interval while a backend (Triton) is unavailable at start
    allow_insecure_remote: bool = False  # bind a non-loopback host with no tokens (open) and no TLS
    tls_cert: str = ""  # PEM certificate chain; with tls_key, the port speaks TLS only
    tls_key: str = ""  # PEM private key
    tls_client_ca: str = ""  # PEM CA bundle: mutual TLS, clients must present a certificate it signed


@dataclass(frozen=True)
class PathsSection:
    models: str = "models"
    var: str = "var"
    backups: str = ""  # gallery backups (serving.gallery.backup): the default Backup folder, searched by Verify


@dataclass(frozen=True)
class ModalitySection:
    """What every audio modality ([speaker], [sound]) configures."""

    enabled: bool = True
    model: str = ""
    version: int = 0  # 0 = the newest version in the repository
    backend: str = "onnxruntime"  # "onnxruntime" (embedded) or "triton" (the [triton] server)
    store_media: bool = False  # default for enrollments that do not ask
    use_vad: bool = False
    vad_model: str = "silero-vad"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")


@dataclass(frozen=True)
class SpeakerSection(ModalitySection):
    """The speaker model; its audio limits are the [audio] section."""

    model: str = "campplus-zh-en"  # 3D-Speaker's CAM++; "resemblyzer-ge2e" (GE2E) is also in the pack
    use_vad: bool = True
    # "as-norm": AS-norm against the version's cohort, with the card's calibration_as_norm
    # thresholds (README "Scoring"); "cosine": the raw cosine with its calibration; "auto": AS-norm
    # where the served version ships a cohort (every speaker model `make models` builds now),
    # cosine for older versions, so that an upgrade never takes a built pack out of service.
    scoring: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scoring not in SCORINGS:
            raise ConfigError(f"[speaker] scoring must be one of {', '.join(SCORINGS)}, got {self.scoring!r}")


@dataclass(frozen=True)
class SoundSection(ModalitySection):
    """The environmental-sound model: whole clips, no VAD, its own length limits."""

    model: str = "toitsu-sound-formula"
    min_seconds: float = 0.5
    max_seconds: float = 30.0


@dataclass(frozen=True)
class FaceSection(ModalitySection):
    """Faces: MTCNN detection, dlib's 5 points and chip geometry, then the embedder (``model``)."""

    model: str = "dlib-resnet-v1"
    detector_model: str = "mtcnn"  # the three models <name>-pnet, -rnet, -onet (embedded ORT)
    landmarks_model: str = "dlib-sp5"  # "" = align with MTCNN's own points (about 0.1 L2 worse)
    min_face_size: int = 20  # px; MTCNN's smallest face (a larger value detects faster)
    max_megapixels: float = 40.0  # larger images are refused with RESOURCE_EXHAUSTED
    # Faces below this detector probability are not returned (a Detect request's min_probability
    # replaces it); 0.9 keeps every real face measured (≥ 0.975) and drops non-faces at 0.86-0.87.
    min_probability: float = 0.9
    # EnrollTracks' default frame quality floor (TrackOptions.min_quality replaces it); 0.25 keeps
    # faces of ≥ 80 px, sharp and within ±45° of yaw (serving/vision/quality.py).
    min_quality: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("min_probability", "min_quality"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key} must be within [0, 1], got {getattr(self, key):g}")


@dataclass(frozen=True)
class TritonSection:
    """The Triton server that models with ``backend = "triton"`` run on (gRPC)."""

    url: str = "127.0.0.1:8001"
    timeout_seconds: float = 10.0  # one inference call, retries included
    probe_timeout_seconds: float = 2.0  # readiness and model-config probes
    retries: int = 2  # re-sends after UNAVAILABLE (inference is a pure function), within timeout_seconds
    retry_backoff_ms: float = 50.0  # doubled on each retry
    reconnect_backoff_ms: int = 500  # gRPC reconnect backoff cap: how soon a restarted Triton is seen again
    ssl: bool = False  # TLS to Triton; implied by any of the three files below
    root_certificates: str = ""  # PEM CA file that signed Triton's certificate; empty = gRPC's default roots
    certificate_chain: str = ""  # PEM client certificate, for a Triton that requires mutual TLS
    private_key: str = ""  # PEM private key of certificate_chain

    def __post_init__(self) -> None:
        if bool(self.certificate_chain) != bool(self.private_key):
            raise ValueError("certificate_chain and private_key go together (mutual TLS): set both or neither")

    @property
    def tls(self) -> bool:
        return self.ssl or bool(self.root_certificates or self.certificate_chain)


@dataclass(frozen=True)
class JobsSection:
    """Training and export jobs (ModelService): supervised subprocesses of the gateway."""

    devices: str = "auto"  # "auto" (each GPU nvidia-smi lists, else one "cpu" slot), or "cpu" / "0,1"
    max_queued: int = 8  # queued jobs beyond this are refused with RESOURCE_EXHAUSTED
    poll_seconds: float = 0.5  # how often a running job's progress and exit are read
    cancel_grace_seconds: float = 10.0  # SIGTERM, then SIGKILL after this long
    validate_timeout_seconds: float = 120.0  # checking a recipe (a subprocess that builds its model)
    recipes: str = "recipes"  # StartTraining's recipe_name is a path under this folder, without .yaml
    workdir: str = "."  # the jobs' working directory (recipes name data folders relative to it)
    work: str = "build"  # export's scratch folder (generated dev data, cached between exports)

    def __post_init__(self) -> None:
        if self.max_queued < 0 or self.poll_seconds <= 0 or self.cancel_grace_seconds < 0:
            raise ValueError("max_queued must be >= 0, poll_seconds > 0 and cancel_grace_seconds >= 0")


@dataclass(frozen=True)
class BackupsSection:
    """Scheduled gallery backups into ``paths.backups`` (serving.backups) and the check at start."""

    interval_seconds: float = 0.0  # a backup of every loaded gallery this often; 0 = no scheduled backups
    keep: int = 7  # scheduled backups kept per modality, newest first (0 = no count limit)
    max_age_seconds: float = 0.0  # scheduled backups older than this are pruned (0 = no age limit)
    verify_at_start: bool = True  # integrity_check + index = store of each gallery before it serves

    def __post_init__(self) -> None:
        if self.interval_seconds < 0 or self.keep < 0 or self.max_age_seconds < 0:
            raise ValueError("interval_seconds, keep and max_age_seconds must be >= 0")


@dataclass(frozen=True)
class AuthSection:
    """Bearer tokens (``toitsu tokens``): required on every RPC once the token store exists."""

    tokens_file: str = ""  # the token store; "" = <paths.var>/security/tokens.json
    # Services (``package.Service``) or methods (``package.Service/Method``) that need no token.
    open_services: tuple[str, ...] = (
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    )
    # Per-subject token buckets (serving.security.ratelimit) for tokens without their own limit:
    # RPCs per second and bucket size (0 = rate_per_second, at least 1). 0 = no limit (the default).
    rate_per_second: float = 0.0
    burst: float = 0.0

    def __post_init__(self) -> None:
        if self.rate_per_second < 0 or self.burst < 0:
            raise ValueError("rate_per_second and burst must be >= 0")


@dataclass(frozen=True)
class AuditSection:
    """The audit trail of RPCs (``serving.audit``): who read or changed which identities."""

    enabled: bool = True
    file: str = ""  # "" = <paths.var>/audit/audit.sqlite
    retention_days: float = 365.0  # older events are deleted at start and every prune_interval_seconds; 0 = keep all
    prune_interval_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.retention_days < 0 or self.prune_interval_seconds <= 0:
            raise ValueError("retention_days must be >= 0 and prune_interval_seconds > 0")


@dataclass(frozen=True)
class Config:
    server: ServerSection = field(default_factory=ServerSection)
    paths: PathsSection = field(default_factory=PathsSection)
    speaker: SpeakerSection = field(default_factory=SpeakerSection)
    sound: SoundSection = field(default_factory=SoundSection)
    face: FaceSection = field(default_factory=FaceSection)
    triton: TritonSection = field(default_factory=TritonSection)
    audio: AudioLimits = field(default_factory=AudioLimits)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    jobs: JobsSection = field(default_factory=JobsSection)
    backups: BackupsSection = field(default_factory=BackupsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    audit: AuditSection = field(default_factory=AuditSection)

    @property
    def models_dir(self) -> Path:
        return Path(self.paths.models)

    @property
    def var_dir(self) -> Path:
        return Path(self.paths.var)

    @property
    def tokens_path(self) -> Path:
        return Path(self.auth.tokens_file) if self.auth.tokens_file else self.var_dir / "security" / "tokens.json"

    @property
    def audit_path(self) -> Path:
        return Path(self.audit.file) if self.audit.file else self.var_dir / "audit" / "audit.sqlite"


def load_config(
    path: Path | None = None, env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
) -> Config:
    """Merge the layers; ``overrides`` maps ``section.key`` to a string value."""
    values: dict[str, dict[str, Any]] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                for section, keys in tomllib.load(f).items():
                    if not isinstance(keys, dict):
                        raise ConfigError(f"{path}: `{section}` must be a [section] table")
                    values.setdefault(section, {}).update(keys)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    for name, value in (env or {}).items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, key = name[len(ENV_PREFIX) :].lower().split("__", 1)
            values.setdefault(section, {})[key] = value
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"override {dotted!r} must look like section.key=value")
        values.setdefault(section, {})[key] = value
    return _build(values)


def _build(values: Mapping[str, Mapping[str, Any]]) -> Config:
    sections = {f.name: f for f in dataclasses.fields(Config)}
    built = {}
    for name, keys in values.items():
        if name not in sections:
            raise ConfigError(f"unknown config section {name!r} (known: {', '.join(sections)})")
        section_type = typing.get_type_hints(Config)[name]
        built[name] = _section(name, section_type, keys)
    config = Config(**built)
    if config.backups.interval_seconds > 0 and not config.paths.backups:
        raise ConfigError("backups.interval_seconds is set but paths.backups is not: where should backups go?")
    return config


def _section(name: str, section_type: type, keys: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(section_type)
    known = {f.name for f in dataclasses.fields(section_type)}
    kwargs = {}
    for key, raw in keys.items():
        if key not in known:
            raise ConfigError(f"unknown key {name}.{key} (known: {', '.join(sorted(known))})")
        kwargs[key] = _coerce(f"{name}.{key}", hints[key], raw)
    try:
        return section_type(**kwargs)
    except ValueError as exc:  # a section's own checks: say which section
        raise ConfigError(f"[{name}] {exc}") from None


def _coerce(where: str, kind: Any, raw: Any) -> Any:
    """Turn a file/env/flag value into the field's type (bool, int, float, str, tuple[...])."""
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"not a boolean: {raw!r}")
            return lowered in ("1", "true", "yes", "on")
        if kind in (int, float, str):
            if kind is int and isinstance(raw, float):
                raise ValueError(f"not an integer: {raw!r}")
            return kind(raw)
        if typing.get_origin(kind) is tuple:
            (item,) = {a for a in typing.get_args(kind) if a is not Ellipsis}
            parts = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).split(",") if p.strip()]
            return tuple(_coerce(where, item, p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return raw
