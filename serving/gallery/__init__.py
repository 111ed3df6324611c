"""Galleries of enrolled identities: SQLite store (source of truth) + derived FAISS index.

See :class:`Gallery` and DESIGN §3 "Gallery"; face tracks are kept beside a gallery by
:class:`TrackLedger`.
"""

from serving.gallery.gallery import Gallery
from serving.gallery.tracks import TrackLedger
from serving.gallery.types import (
    ConsistencyReport,
    EnrollMode,
    EnrollResult,
    GalleryConfig,
    IdentityInfo,
    IndexInfo,
    Match,
    Media,
    ModelBinding,
    TrackEnrollResult,
)

__all__ = [
    "ConsistencyReport",
    "EnrollMode",
    "EnrollResult",
    "Gallery",
    "GalleryConfig",
    "IdentityInfo",
    "IndexInfo",
    "Match",
    "Media",
    "ModelBinding",
    "TrackEnrollResult",
    "TrackLedger",
]
