"""What the gallery-backed servicers (speakers, sound classes, …) do alike: enroll, probe,
search with an open-set decision, list. Each servicer keeps its own messages and words."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import grpc
import numpy as np

from contracts.card import AnyCard
from protos.v1 import common_pb2, sound_pb2, speaker_pb2
from serving.errors import AlreadyExists, InvalidInput, NotFound
from serving.gallery import EnrollMode, EnrollResult, Gallery, IdentityInfo, Match, ModelBinding
from serving.modality import AudioModality
from serving.scoring import Scorer, normalize, threshold
from serving.services.convert import audio_info, audio_media, embedding_probe, enroll_mode

MAX_ENROLL_CLIPS = 32
DEFAULT_TOP_K, MAX_TOP_K = 5, 100
DEFAULT_PAGE, MAX_PAGE = 100, 1000


class GalleryModality(Protocol):
    """What these operations need of a loaded modality (speaker, sound, face): card, binding, gallery."""

    gallery: Gallery

    @property
    def card(self) -> AnyCard: ...
    @property
    def binding(self) -> ModelBinding: ...


class SearchRequest(Protocol):
    """The fields every Identify/Classify request has besides its probe."""

    top_k: int
    target_far: float


# The requests whose ``probe`` oneof is audio or an embedding.
AudioProbeRequest = (
    speaker_pb2.VerifySpeakerRequest | speaker_pb2.IdentifySpeakerRequest | sound_pb2.ClassifySoundRequest
)

ModalityT = TypeVar("ModalityT", bound=GalleryModality)
RequestT = TypeVar("RequestT", bound=SearchRequest)
InfoT = TypeVar("InfoT")


@dataclass(frozen=True)
class Nouns:
    """How a servicer names what it stores, for messages a person reads."""

    thing: str  # "speaker", "class"
    clip: str  # "utterance", "clip"


def enroll(
    rt: AudioModality,
    identity: str,
    clips: Sequence[common_pb2.Audio],
    *,
    mode_value: int,
    store_media: bool,
    metadata: Mapping[str, str],
    context: grpc.ServicerContext,
    timeout: float,
    nouns: Nouns,
) -> tuple[EnrollResult, list[common_pb2.AudioInfo]]:
    """Validate, embed every clip, and commit one enrollment (atomic: all clips or nothing)."""
    if not clips:
        raise InvalidInput(f"enrollment needs at least one {nouns.clip}")
    if len(clips) > MAX_ENROLL_CLIPS:
        raise InvalidInput(f"{len(clips)} {nouns.clip}s in one enrollment; the limit is {MAX_ENROLL_CLIPS}")
    mode = enroll_mode(mode_value)
    exists = _exists(rt, identity)
    if exists and mode is EnrollMode.CREATE:
        raise AlreadyExists(f"{nouns.thing} {identity!r} is already enrolled; use mode APPEND or REPLACE")
    if not exists and mode is not EnrollMode.CREATE:
        raise NotFound(f"{nouns.thing} {identity!r} is not enrolled; {mode.name} needs an existing {nouns.thing}")
    vectors, prepared = rt.embed(clips, timeout)
    result = rt.gallery.enroll(
        identity,
        vectors,
        model=rt.binding,
        mode=mode,
        media=[audio_media(a) for a in clips] if store_media else (),
        metadata=dict(metadata),
        actor=context.peer(),
    )
    return result, [audio_info(*p) for p in prepared]


def probe(
    rt: AudioModality, request: AudioProbeRequest, timeout: float
) -> tuple[np.ndarray, ModelBinding, common_pb2.AudioInfo | None]:
    """(vector, the model that made it, AudioInfo or None) from a request's ``probe`` oneof."""
    which = request.WhichOneof("probe")
    if which == "embedding":
        vector, model = embedding_probe(request.embedding, rt.card.embedding_dim or 0)
        return vector, model, None
    if which != "audio":
        raise InvalidInput("the request needs a probe: audio or an embedding")
    vectors, prepared = rt.embed([request.audio], timeout)
    return vectors[0], rt.binding, audio_info(*prepared[0])


@dataclass(frozen=True)
class OpenSetResult(Generic[InfoT]):
    matches: list[Match]
    known: bool  # the best match passes the threshold
    threshold: float
    target_far: float
    info: InfoT | None  # AudioInfo, or the DetectedFace of a face probe


def search(
    rt: ModalityT,
    request: RequestT,
    timeout: float,
    probe_fn: Callable[[ModalityT, RequestT, float], tuple[np.ndarray, ModelBinding, InfoT | None]],
    scorer: Scorer | None = None,
) -> OpenSetResult[InfoT]:
    """Top-k over the gallery with the calibrated open-set decision for ``request.target_far``.

    ``probe_fn(rt, request, timeout) -> (vector, model, info)`` reads the request's probe (:func:`probe`
    for audio; the face service passes its image probe, whose ``info`` is the face compared).
    With an AS-norm ``scorer`` the index still retrieves by raw cosine: AS-norm is applied to the
    retrieved candidates only (``max(top_k, 10) · 2`` of them), which are re-ranked by it, and the
    threshold is the AS-norm calibration's."""
    value, far = threshold(rt.card, request.target_far, scorer)  # refuse an uncalibrated FAR before any work
    top_k = request.top_k or DEFAULT_TOP_K
    if top_k > MAX_TOP_K:
        raise InvalidInput(f"top_k {top_k} is above the limit of {MAX_TOP_K}")
    vector, model, info = probe_fn(rt, request, timeout)
    if scorer is None or scorer.cohort is None:
        matches = rt.gallery.search(vector, top_k, model=model)
    else:
        matches = _rerank(rt.gallery, scorer, vector, model, top_k)
    return OpenSetResult(matches, bool(matches) and matches[0].score >= value, value, far, info)


def _rerank(gallery: Gallery, scorer: Scorer, vector: np.ndarray, model: ModelBinding, top_k: int) -> list[Match]:
    """The index's best ``max(top_k, 10) · 2`` by cosine, re-scored by AS-norm, best ``top_k`` first."""
    retrieved = gallery.search(vector, max(top_k, 10) * 2, model=model)
    if not retrieved:
        return []
    templates = np.stack([gallery.template(m.identity) for m in retrieved])
    raw = np.array([m.score for m in retrieved], dtype=np.float32)
    scores = scorer.rescore(raw, templates, normalize(vector))
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [Match(retrieved[i].identity, float(scores[i])) for i in order]


def candidates(result: OpenSetResult[InfoT]) -> list[dict[str, object]]:
    return [{"id": m.identity, "score": m.score, "accepted": m.score >= result.threshold} for m in result.matches]


def list_page(rt: GalleryModality, page_size: int, page_token: str) -> tuple[list[IdentityInfo], str, int]:
    size = page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise InvalidInput(f"page_size {size} is above the limit of {MAX_PAGE}")
    infos, token = rt.gallery.list(page_size=size, page_token=page_token)
    return infos, token, len(rt.gallery)


def _exists(rt: GalleryModality, identity: str) -> bool:
    try:
        rt.gallery.info(identity)
        return True
    except NotFound:
        return False
