"""``toitsu.v1.SpeakerService``: embed, enroll, verify, identify, delete, list speakers."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np

from protos.v1 import speaker_pb2, speaker_pb2_grpc
from serving.modality import AudioModality
from serving.scoring import decide, normalize, threshold
from serving.services import gallery_ops as ops
from serving.services.convert import audio_info, identity_info, model_ref
from serving.services.deadlines import remaining

NOUNS = ops.Nouns("speaker", "utterance")


class SpeakerServicer(speaker_pb2_grpc.SpeakerServiceServicer):
    """``runtime()`` returns the loaded speaker modality or raises Unavailable while loading."""

    def __init__(self, runtime: Callable[[], AudioModality], default_deadline: float, store_media: bool) -> None:
        self._runtime, self._default_deadline, self._store_media = runtime, default_deadline, store_media

    def Embed(
        self, request: speaker_pb2.EmbedSpeakerRequest, context: grpc.ServicerContext
    ) -> speaker_pb2.EmbedSpeakerResponse:
        rt = self._runtime()
        vectors, prepared = rt.embed([request.audio], remaining(context, self._default_deadline))
        return speaker_pb2.EmbedSpeakerResponse(
            embedding={"values": vectors[0].tolist(), "model": model_ref(rt.binding)},
            audio_info=audio_info(*prepared[0]),
        )

    def Enroll(
        self, request: speaker_pb2.EnrollSpeakerRequest, context: grpc.ServicerContext
    ) -> speaker_pb2.EnrollSpeakerResponse:
        rt = self._runtime()
        result, infos = ops.enroll(
            rt,
            request.speaker_id,
            request.audio,
            mode_value=request.mode,
            store_media=request.store_media or self._store_media,
            metadata=request.metadata,
            context=context,
            timeout=remaining(context, self._default_deadline),
            nouns=NOUNS,
        )
        return speaker_pb2.EnrollSpeakerResponse(
            speaker_id=result.identity,
            num_samples=result.num_samples,
            created=result.created,
            model=model_ref(rt.binding),
            sequence=result.sequence,
            audio_info=infos,
        )

    def Verify(
        self, request: speaker_pb2.VerifySpeakerRequest, context: grpc.ServicerContext
    ) -> speaker_pb2.VerifySpeakerResponse:
        rt = self._runtime()
        threshold(rt.card, request.target_far, rt.scorer)  # refuse an uncalibrated FAR before any work
        rt.gallery.info(request.speaker_id)  # NotFound before embedding
        vector, model, info = ops.probe(rt, request, remaining(context, self._default_deadline))
        score = rt.gallery.score(request.speaker_id, vector, model=model)
        if rt.scorer.cohort is not None:  # AS-norm of the cosine, against the version's cohort
            template = rt.gallery.template(request.speaker_id)
            score = float(rt.scorer.rescore(np.array([score]), template[None, :], normalize(vector))[0])
        decision = decide(score, rt.card, request.target_far, rt.scorer)
        return speaker_pb2.VerifySpeakerResponse(
            speaker_id=request.speaker_id,
            model=model_ref(rt.binding),
            audio_info=info,
            decision={
                "score": decision.score,
                "accepted": decision.accepted,
                "threshold": decision.threshold,
                "target_far": decision.target_far,
            },
            scoring=rt.scorer.kind,
        )

    def Identify(
        self, request: speaker_pb2.IdentifySpeakerRequest, context: grpc.ServicerContext
    ) -> speaker_pb2.IdentifySpeakerResponse:
        rt = self._runtime()
        found = ops.search(
            rt, request, remaining(context, self._default_deadline), probe_fn=ops.probe, scorer=rt.scorer
        )
        return speaker_pb2.IdentifySpeakerResponse(
            candidates=ops.candidates(found),
            identified=found.known,
            best_id=found.matches[0].identity if found.known else "",
            threshold=found.threshold,
            target_far=found.target_far,
            model=model_ref(rt.binding),
            audio_info=found.info,
            gallery_size=len(rt.gallery),
            scoring=rt.scorer.kind,
        )

    def Delete(
        self, request: speaker_pb2.DeleteSpeakerRequest, context: grpc.ServicerContext
    ) -> speaker_pb2.DeleteSpeakerResponse:
        self._runtime().gallery.delete(request.speaker_id, actor=context.peer())
        return speaker_pb2.DeleteSpeakerResponse(speaker_id=request.speaker_id)

    def List(
        self, request: speaker_pb2.ListSpeakersRequest, context: grpc.ServicerContext
    ) -> speaker_pb2.ListSpeakersResponse:
        infos, token, total = ops.list_page(self._runtime(), request.page_size, request.page_token)
        return speaker_pb2.ListSpeakersResponse(
            speakers=[identity_info(i) for i in infos], next_page_token=token, total=total
        )
