"""``toitsu.v1.SpeakerService``: embed, enroll, verify, identify, delete, list speakers."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from protos.v1 import speaker_pb2, speaker_pb2_grpc
from serving.errors import AlreadyExists, InvalidInput, NotFound
from serving.gallery import EnrollMode
from serving.modality import AudioModality
from serving.scoring import decide, threshold
from serving.services.convert import (audio_info, audio_media, embedding_probe, enroll_mode, identity_info,
                                      model_ref)
from serving.services.deadlines import remaining

MAX_ENROLL_CLIPS = 32
DEFAULT_TOP_K, MAX_TOP_K = 5, 100
DEFAULT_PAGE, MAX_PAGE = 100, 1000


class SpeakerServicer(speaker_pb2_grpc.SpeakerServiceServicer):
    """``runtime()`` returns the loaded speaker modality or raises Unavailable while loading."""

    def __init__(self, runtime: Callable[[], AudioModality], default_deadline: float, store_media: bool) -> None:
        self._runtime, self._default_deadline, self._store_media = runtime, default_deadline, store_media

    def Embed(self, request, context):
        rt = self._runtime()
        vectors, prepared = rt.embed([request.audio], remaining(context, self._default_deadline))
        return speaker_pb2.EmbedSpeakerResponse(
            embedding={"values": vectors[0].tolist(), "model": model_ref(rt.binding)},
            audio_info=audio_info(*prepared[0]))

    def Enroll(self, request, context):
        rt = self._runtime()
        if not request.audio:
            raise InvalidInput("enrollment needs at least one utterance")
        if len(request.audio) > MAX_ENROLL_CLIPS:
            raise InvalidInput(f"{len(request.audio)} utterances in one enrollment; the limit is {MAX_ENROLL_CLIPS}")
        mode = enroll_mode(request.mode)
        exists = _exists(rt, request.speaker_id)
        if exists and mode is EnrollMode.CREATE:
            raise AlreadyExists(f"speaker {request.speaker_id!r} is already enrolled; use mode APPEND or REPLACE")
        if not exists and mode is not EnrollMode.CREATE:
            raise NotFound(f"speaker {request.speaker_id!r} is not enrolled; {mode.name} needs an existing speaker")
        vectors, prepared = rt.embed(request.audio, remaining(context, self._default_deadline))
        keep_media = request.store_media or self._store_media
        result = rt.gallery.enroll(
            request.speaker_id, vectors, model=rt.binding, mode=mode,
            media=[audio_media(a) for a in request.audio] if keep_media else (),
            metadata=dict(request.metadata), actor=context.peer())
        return speaker_pb2.EnrollSpeakerResponse(
            speaker_id=result.identity, num_samples=result.num_samples, created=result.created,
            model=model_ref(rt.binding), sequence=result.sequence, audio_info=[audio_info(*p) for p in prepared])

    def Verify(self, request, context):
        rt = self._runtime()
        threshold(rt.card, request.target_far)  # refuse an uncalibrated FAR before any work
        rt.gallery.info(request.speaker_id)  # NotFound before embedding
        probe, model, info = self._probe(rt, request, context)
        decision = decide(rt.gallery.score(request.speaker_id, probe, model=model), rt.card, request.target_far)
        return speaker_pb2.VerifySpeakerResponse(
            speaker_id=request.speaker_id, model=model_ref(rt.binding), audio_info=info,
            decision={"score": decision.score, "accepted": decision.accepted, "threshold": decision.threshold,
                      "target_far": decision.target_far})

    def Identify(self, request, context):
        rt = self._runtime()
        value, far = threshold(rt.card, request.target_far)
        top_k = request.top_k or DEFAULT_TOP_K
        if top_k > MAX_TOP_K:
            raise InvalidInput(f"top_k {top_k} is above the limit of {MAX_TOP_K}")
        probe, model, info = self._probe(rt, request, context)
        matches = rt.gallery.search(probe, top_k, model=model)
        identified = bool(matches) and matches[0].score >= value
        return speaker_pb2.IdentifySpeakerResponse(
            candidates=[{"id": m.identity, "score": m.score, "accepted": m.score >= value} for m in matches],
            identified=identified, best_id=matches[0].identity if identified else "", threshold=value,
            target_far=far, model=model_ref(rt.binding), audio_info=info, gallery_size=len(rt.gallery))

    def Delete(self, request, context):
        self._runtime().gallery.delete(request.speaker_id, actor=context.peer())
        return speaker_pb2.DeleteSpeakerResponse(speaker_id=request.speaker_id)

    def List(self, request, context):
        gallery = self._runtime().gallery
        page_size = request.page_size or DEFAULT_PAGE
        if page_size > MAX_PAGE:
            raise InvalidInput(f"page_size {page_size} is above the limit of {MAX_PAGE}")
        infos, token = gallery.list(page_size=page_size, page_token=request.page_token)
        return speaker_pb2.ListSpeakersResponse(speakers=[identity_info(i) for i in infos], next_page_token=token,
                                                total=len(gallery))

    def _probe(self, rt: AudioModality, request, context: grpc.ServicerContext):
        """(vector, model binding, AudioInfo or None) from the request's audio or embedding probe."""
        which = request.WhichOneof("probe")
        if which == "embedding":
            vector, model = embedding_probe(request.embedding, rt.card.embedding_dim or 0)
            return vector, model, None
        if which != "audio":
            raise InvalidInput("the request needs a probe: audio or an embedding")
        vectors, prepared = rt.embed([request.audio], remaining(context, self._default_deadline))
        return vectors[0], rt.binding, audio_info(*prepared[0])


def _exists(rt: AudioModality, identity: str) -> bool:
    try:
        rt.gallery.info(identity)
        return True
    except NotFound:
        return False
