"""``toitsu.v1.SoundService``: embed clips, enroll classes from examples, classify against the
class prototypes with a calibrated open-set "unknown", delete and list classes.

A class is stored in the sound gallery exactly as a speaker is in the speaker gallery: its
prototype is the normalised mean of its example embeddings (few-shot classification by
prototype similarity, METHODS §4's downstream use).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from protos.v1 import sound_pb2, sound_pb2_grpc
from serving.modality import AudioModality
from serving.services import gallery_ops as ops
from serving.services.convert import audio_info, identity_info, model_ref
from serving.services.deadlines import remaining

NOUNS = ops.Nouns("class", "clip")


class SoundServicer(sound_pb2_grpc.SoundServiceServicer):
    """``runtime()`` returns the loaded sound modality or raises Unavailable."""

    def __init__(self, runtime: Callable[[], AudioModality], default_deadline: float, store_media: bool) -> None:
        self._runtime, self._default_deadline, self._store_media = runtime, default_deadline, store_media

    def Embed(
        self, request: sound_pb2.EmbedSoundRequest, context: grpc.ServicerContext
    ) -> sound_pb2.EmbedSoundResponse:
        rt = self._runtime()
        vectors, prepared = rt.embed([request.audio], remaining(context, self._default_deadline))
        return sound_pb2.EmbedSoundResponse(
            embedding={"values": vectors[0].tolist(), "model": model_ref(rt.binding)},
            audio_info=audio_info(*prepared[0]),
        )

    def EnrollClass(
        self, request: sound_pb2.EnrollClassRequest, context: grpc.ServicerContext
    ) -> sound_pb2.EnrollClassResponse:
        rt = self._runtime()
        result, _ = ops.enroll(
            rt,
            request.label,
            request.audio,
            mode_value=request.mode,
            store_media=request.store_media or self._store_media,
            metadata=request.metadata,
            context=context,
            timeout=remaining(context, self._default_deadline),
            nouns=NOUNS,
        )
        return sound_pb2.EnrollClassResponse(
            label=result.identity,
            num_samples=result.num_samples,
            created=result.created,
            model=model_ref(rt.binding),
            sequence=result.sequence,
        )

    def Classify(
        self, request: sound_pb2.ClassifySoundRequest, context: grpc.ServicerContext
    ) -> sound_pb2.ClassifySoundResponse:
        rt = self._runtime()
        found = ops.search(rt, request, remaining(context, self._default_deadline), probe_fn=ops.probe)
        return sound_pb2.ClassifySoundResponse(
            candidates=ops.candidates(found),
            known=found.known,
            label=found.matches[0].identity if found.known else "",
            threshold=found.threshold,
            target_far=found.target_far,
            model=model_ref(rt.binding),
            audio_info=found.info,
            classes=len(rt.gallery),
        )

    def DeleteClass(
        self, request: sound_pb2.DeleteClassRequest, context: grpc.ServicerContext
    ) -> sound_pb2.DeleteClassResponse:
        self._runtime().gallery.delete(request.label, actor=context.peer())
        return sound_pb2.DeleteClassResponse(label=request.label)

    def ListClasses(
        self, request: sound_pb2.ListClassesRequest, context: grpc.ServicerContext
    ) -> sound_pb2.ListClassesResponse:
        infos, token, total = ops.list_page(self._runtime(), request.page_size, request.page_token)
        return sound_pb2.ListClassesResponse(
            classes=[identity_info(i) for i in infos], next_page_token=token, total=total
        )
