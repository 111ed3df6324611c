"""Checks on everything that enters the gallery, and the template arithmetic.

Every check raises a domain error (InvalidInput / Overloaded / ModelMismatch) before anything
reaches SQLite or FAISS, so no internal assert can leak out as UNKNOWN.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import numpy as np

from serving.errors import InvalidInput, ModelMismatch, Overloaded
from serving.gallery.types import GalleryConfig, Media, ModelBinding

_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_MIN_NORM = 1e-12


def identity(value: object) -> str:
    """An external id: 1..128 characters of ``[A-Za-z0-9._:@-]``."""
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
        raise InvalidInput(f"identity {shown} is not 1-128 characters of letters, digits and . _ : @ -")
    return value


def actor(value: object) -> str:
    """Who made a change, for the audit log: any value as text, at most 256 characters."""
    return str(value or "")[:256]


def binding(gallery: ModelBinding, given: ModelBinding, modality: str) -> None:
    if not isinstance(given, ModelBinding):
        raise InvalidInput("the embeddings' model must be given as a ModelBinding(name, version)")
    if given != gallery:
        raise ModelMismatch(
            f"embeddings come from {given} but the {modality} gallery is bound to {gallery}; "
            f"embed with {gallery}, or activate {given} (`toitsu models activate`) to re-embed the gallery"
        )


def embeddings(value: object, dim: int, max_rows: int) -> np.ndarray:
    """[n, dim] (or one [dim] vector) of finite, non-zero floats → [n, dim] float32, rows L2-normalised."""
    array = _float_array(value, "embeddings")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim or array.shape[0] == 0:
        raise InvalidInput(f"embeddings have shape {tuple(array.shape)}; expected [n >= 1, {dim}]")
    if array.shape[0] > max_rows:
        raise Overloaded(f"{array.shape[0]} embeddings in one enrollment; the limit is {max_rows}")
    return _normalise_rows(array, "embedding")


def probe(value: object, dim: int) -> np.ndarray:
    """A [dim] (or [1, dim]) probe → [dim] float32, L2-normalised."""
    array = _float_array(value, "probe")
    if array.shape not in ((dim,), (1, dim)):
        raise InvalidInput(f"probe has shape {tuple(array.shape)}; expected [{dim}]")
    return _normalise_rows(array.reshape(1, dim), "probe")[0]


def _float_array(value: object, what: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not a numeric array: {exc}") from None
    if array.dtype.kind != "f":
        raise InvalidInput(f"{what} must be floating point, not {array.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidInput(f"{what} contains NaN or infinite values (or values too large for float32)")
    return array


def _normalise_rows(array: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(array.astype(np.float64), axis=1, keepdims=True)
    if (norms <= _MIN_NORM).any():
        raise InvalidInput(f"an all-zero {what} cannot be compared by cosine")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def template(unit_samples: np.ndarray) -> np.ndarray:
    """The template of an identity: the L2-normalised mean of its (L2-normalised) samples → [dim] float32.

    Samples are normalised first so that an utterance with a large raw norm does not dominate.
    """
    if len(unit_samples) == 1:
        return unit_samples[0].copy()
    mean = unit_samples.astype(np.float64).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm <= 1e-6:
        raise InvalidInput("the samples cancel out (their mean is zero); they cannot form a template")
    return (mean / norm).astype(np.float32)


def media(items: Sequence[Media], limit: int) -> list[Media]:
    checked, total = [], 0
    for item in items:
        if not isinstance(item, Media) or not isinstance(item.data, (bytes, bytearray, memoryview)):
            raise InvalidInput("media must be Media(data: bytes, format: str) values")
        if not isinstance(item.format, str) or not 0 < len(item.format) <= 64:
            raise InvalidInput("a media format must be a non-empty string of at most 64 characters")
        total += len(item.data)
        checked.append(Media(bytes(item.data), item.format))
    if total > limit:
        raise Overloaded(f"{total} bytes of enrollment media; the limit is {limit}")
    return checked


def metadata(value: Mapping[str, str] | None, limit: int) -> dict[str, str] | None:
    """None (or empty: leave what is stored) or a str → str mapping of bounded size."""
    if not value:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidInput("metadata must map strings to strings")
    plain = dict(value)
    if len(json.dumps(plain).encode()) > limit:
        raise Overloaded(f"metadata is larger than {limit} bytes")
    return plain


def top_k(k: object, config: GalleryConfig) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInput(f"k must be a positive integer, not {k!r}")
    if k > config.max_k:
        raise Overloaded(f"k = {k} is above the limit of {config.max_k}")
    return int(k)


def gallery_shape(modality: object, dim: object) -> tuple[str, int]:
    if not isinstance(modality, str) or re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", modality) is None:
        raise InvalidInput(f"modality {modality!r} is not a short lower-case name")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 0 < dim <= 65_536:
        raise InvalidInput(f"embedding dimension {dim!r} is not a positive integer")
    return modality, int(dim)
