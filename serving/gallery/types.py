"""The gallery's value types and configuration (DESIGN §3 "Gallery")."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelBinding:
    """The model (name + version) whose embeddings a gallery holds; nothing else may be scored against it."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class EnrollMode(enum.Enum):
    CREATE = "create"  # a new identity; AlreadyExists if it is there
    APPEND = "append"  # add samples to an existing identity; the template is re-averaged over all of them
    REPLACE = "replace"  # drop an existing identity's samples and media, keep only the new ones


@dataclass(frozen=True)
class Media:
    """Raw enrollment media kept so that a later model version can re-embed it."""

    data: bytes
    format: str  # e.g. "wav", "flac", "pcm_s16le@16000", "encoded"


@dataclass(frozen=True)
class EnrollResult:
    identity: str
    num_samples: int  # samples the template now averages (all of them in APPEND mode)
    sequence: int  # the change-log sequence number of this enrollment
    created: bool


@dataclass(frozen=True)
class TrackEnrollResult:
    """One face track committed (EnrollTracks): its identity's new state and what it replaced."""

    identity: str
    num_samples: int  # samples (tracks and single images) the identity's template now averages
    sequence: int
    created: bool  # the identity was new
    replaced: bool  # the track id was enrolled before; its old sample is gone
    moved_from: str | None = None  # the identity the track belonged to before, when it changed


@dataclass(frozen=True)
class IdentityInfo:
    identity: str
    num_samples: int
    created_at: float  # Unix seconds
    updated_at: float
    model: ModelBinding
    has_media: bool
    metadata: dict[str, str]


@dataclass(frozen=True)
class Match:
    identity: str
    score: float  # cosine similarity to the identity's template


@dataclass(frozen=True)
class ConsistencyReport:
    """How the derived index compares with the store (the source of truth)."""

    store_count: int
    index_count: int
    missing_from_index: tuple[str, ...]  # in the store, not in the index (first few)
    extra_in_index: tuple[int, ...]  # row ids in the index that the store lacks (first few)
    mismatched: tuple[str, ...]  # in both, different vectors (first few)
    store_sequence: int
    index_sequence: int
    index_kind: str

    @property
    def ok(self) -> bool:
        return (
            not self.missing_from_index
            and not self.extra_in_index
            and not self.mismatched
            and self.store_count == self.index_count
            and self.store_sequence == self.index_sequence
        )


@dataclass(frozen=True)
class IndexInfo:
    """What the derived index is right now (for health, metrics and the benchmark)."""

    kind: str  # "flat" (exact) or "pq-rerank" (approximate)
    size: int
    sequence: int  # last change-log sequence number applied
    params: dict[str, float] = field(default_factory=dict)
    loaded_from: str = ""  # "snapshot + N replayed changes" or "store (<why the snapshot was not used>)"
    last_error: str | None = None  # of background maintenance (snapshot, rebuild), if any failed


@dataclass(frozen=True)
class GalleryConfig:
    """Knobs of a gallery; every field is a plain scalar so that ``serving.config`` can set it.

    Index choice (recorded in the snapshot): exact ``flat`` while the gallery has at most
    ``flat_max`` identities; above that ``pq-rerank`` (4-bit PQ fast-scan over every vector, the
    best ``rerank`` candidates re-scored exactly); back to ``flat`` only below
    ``flat_max * flat_return`` so that a gallery hovering at the threshold does not flap.
    """

    flat_max: int = 100_000
    flat_return: float = 0.5
    pq_dims_per_code: int = 8  # dimensions per 4-bit sub-quantizer: 256-d → 32 codes = 16 bytes a vector
    pq_train_max: int = 65_536  # training sample for the product quantizer
    rerank_min: int = 32  # candidate counts the tuner tries (doubling) before exact re-scoring
    rerank_max: int = 1024
    target_recall: float = 0.995  # recall@1 against exact search the tuner aims for on noisy probes
    tune_probes: int = 256
    compact_ratio: float = 0.1  # rebuild pq-rerank when this share of its slots are dead
    snapshot_every: int = 1000  # changes between automatic snapshots ...
    snapshot_fraction: float = 0.25  # ... or this share of the gallery, whichever is larger
    # A delete removes the on-disk snapshot before it returns (it may hold the deleted template) and a
    # new one is written in the background. False: the old snapshot stays until the next due one.
    snapshot_after_delete: bool = True
    search_threads: int = 1  # OpenMP threads per search; 1 is fastest for one query on small hosts
    build_threads: int = 1  # OpenMP threads for index builds (training, bulk encode)
    max_k: int = 10_000
    max_samples: int = 10_000  # per identity
    max_media_bytes: int = 64 * 1024 * 1024  # per enrollment
    max_metadata_bytes: int = 16 * 1024
    background: bool = True  # snapshots and index rebuilds in a worker thread (False: inline, for tests)
    # The store: "sqlite" (the embedded default, a file in the gallery folder) or "postgres" (one schema
    # per gallery in the database ``dsn`` names, a libpq connection string or URI; gateways may share it).
    backend: str = "sqlite"
    dsn: str = ""
    # postgres: how often this gateway reads the change log for other gateways' writes (serving.gallery.follow)
    follow_interval_ms: int = 200

    def __post_init__(self) -> None:
        positive = (
            "pq_dims_per_code",
            "pq_train_max",
            "rerank_min",
            "rerank_max",
            "tune_probes",
            "snapshot_every",
            "search_threads",
            "build_threads",
            "max_k",
            "max_samples",
            "max_media_bytes",
            "max_metadata_bytes",
            "follow_interval_ms",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"gallery.{name} must be at least 1")
        if self.flat_max < 0 or self.rerank_max < self.rerank_min:
            raise ValueError("gallery.flat_max must be >= 0 and gallery.rerank_max >= gallery.rerank_min")
        if self.backend not in ("sqlite", "postgres"):
            raise ValueError(f'gallery.backend must be "sqlite" or "postgres", not {self.backend!r}')
        if self.backend == "postgres" and not self.dsn.strip():
            raise ValueError(
                'gallery.backend = "postgres" needs gallery.dsn (e.g. "host=db dbname=toitsu user=toitsu")'
            )
        if self.backend == "sqlite" and self.dsn:
            raise ValueError('gallery.dsn is set but gallery.backend is "sqlite": set backend = "postgres" or drop dsn')
        for name in ("flat_return", "target_recall", "compact_ratio", "snapshot_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"gallery.{name} must be between 0 and 1")
