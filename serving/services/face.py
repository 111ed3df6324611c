"""``toitsu.v1.FaceService``: detect, embed, enroll (images or streamed face tracks), verify,
identify, delete and list people. Same gallery machinery and status codes as the speakers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import grpc
import numpy as np

from protos.v1 import face_pb2, face_pb2_grpc
from serving.errors import InvalidInput
from serving.gallery import Media, ModelBinding
from serving.modality import FaceModality
from serving.scoring import decide, threshold
from serving.services import gallery_ops as ops
from serving.services.convert import embedding_probe, enroll_mode, identity_info, model_ref
from serving.services.deadlines import remaining
from serving.services.face_tracks import TrackSession
from serving.vision.pipeline import AlignedFace

MAX_ENROLL_IMAGES = 32


def detected_face(face: AlignedFace) -> face_pb2.DetectedFace:
    """The reply's view of one face (box and landmarks unset for a client-aligned crop)."""
    message = face_pb2.DetectedFace(quality=face.quality.as_dict())
    d = face.detection
    if d is not None:
        message.x1, message.y1, message.x2, message.y2 = (float(v) for v in d.box)
        message.probability = d.probability
        message.landmarks.extend(face_pb2.Point(x=float(x), y=float(y)) for x, y in d.landmarks)
    return message


def image_info(image: np.ndarray, faces: int) -> face_pb2.ImageInfo:
    return face_pb2.ImageInfo(width=image.shape[1], height=image.shape[0], faces=faces)


def face_probe(
    rt: FaceModality, request: face_pb2.VerifyFaceRequest | face_pb2.IdentifyFaceRequest, timeout: float
) -> tuple[np.ndarray, ModelBinding, face_pb2.DetectedFace | None]:
    """(vector, model, DetectedFace | None) from a Verify/Identify request's probe oneof."""
    which = request.WhichOneof("probe")
    if which == "embedding":
        vector, model = embedding_probe(request.embedding, rt.card.embedding_dim or 0)
        return vector, model, None
    if which != "image":
        raise InvalidInput("the request needs a probe: an image or an embedding")
    face = rt.pipeline.main_face(rt.decode(request.image))
    return rt.embed([face], timeout)[0], rt.binding, detected_face(face)


class FaceServicer(face_pb2_grpc.FaceServiceServicer):
    """``runtime()`` returns the loaded face modality or raises Unavailable while loading."""

    def __init__(self, runtime: Callable[[], FaceModality], default_deadline: float, store_media: bool) -> None:
        self._runtime, self._default_deadline, self._store_media = runtime, default_deadline, store_media

    def Detect(
        self, request: face_pb2.DetectFacesRequest, context: grpc.ServicerContext
    ) -> face_pb2.DetectFacesResponse:
        rt = self._runtime()
        image = rt.decode(request.image)
        if not 0.0 <= request.min_probability <= 1.0:
            raise InvalidInput(f"min_probability must be within [0, 1], got {request.min_probability:g}")
        found = rt.pipeline.detect(image, request.min_probability or None)  # 0: face.min_probability
        faces = [rt.pipeline.aligned(image, d) for d in found]  # aligned only for the chip's quality
        return face_pb2.DetectFacesResponse(
            faces=[detected_face(f) for f in faces],
            image_info=image_info(image, len(faces)),
            detector=model_ref(rt.detector),
        )

    def Embed(self, request: face_pb2.EmbedFacesRequest, context: grpc.ServicerContext) -> face_pb2.EmbedFacesResponse:
        rt = self._runtime()
        which = request.WhichOneof("input")
        if which not in ("image", "aligned"):
            raise InvalidInput("the request needs an image or an aligned crop")
        image = rt.decode(getattr(request, which))
        faces = rt.pipeline.faces(image) if which == "image" else [rt.pipeline.client_crop(image)]
        vectors = rt.embed(faces, remaining(context, self._default_deadline))
        ref = model_ref(rt.binding)
        return face_pb2.EmbedFacesResponse(
            faces=[
                face_pb2.FaceEmbedding(face=detected_face(f), embedding={"values": v.tolist(), "model": ref})
                for f, v in zip(faces, vectors)
            ],
            image_info=image_info(image, len(faces)),
        )

    def Enroll(self, request: face_pb2.EnrollFaceRequest, context: grpc.ServicerContext) -> face_pb2.EnrollFaceResponse:
        rt = self._runtime()
        if not request.images:
            raise InvalidInput("enrollment needs at least one image")
        if len(request.images) > MAX_ENROLL_IMAGES:
            raise InvalidInput(f"{len(request.images)} images in one enrollment; the limit is {MAX_ENROLL_IMAGES}")
        faces = []
        for n, message in enumerate(request.images):
            try:
                faces.append(rt.pipeline.main_face(rt.decode(message)))
            except InvalidInput as exc:
                raise InvalidInput(f"image {n}: {exc.message}") from None
        vectors = rt.embed(faces, remaining(context, self._default_deadline))
        store_media = request.store_media or self._store_media
        media = [Media(bytes(m.encoded), "encoded") for m in request.images if m.WhichOneof("source") == "encoded"]
        result = rt.gallery.enroll(
            request.person_id,
            vectors,
            model=rt.binding,
            mode=enroll_mode(request.mode),
            media=media if store_media else (),
            metadata=dict(request.metadata),
            actor=context.peer(),
        )
        return face_pb2.EnrollFaceResponse(
            person_id=result.identity,
            num_samples=result.num_samples,
            created=result.created,
            model=model_ref(rt.binding),
            sequence=result.sequence,
        )

    def EnrollTracks(
        self, request_iterator: Iterator[face_pb2.EnrollTracksRequest], context: grpc.ServicerContext
    ) -> Iterator[face_pb2.EnrollTracksResponse]:
        rt = self._runtime()
        session = TrackSession(
            rt,
            store_media=self._store_media,
            actor=context.peer(),
            timeout=lambda: remaining(context, self._default_deadline),
            workers=min(4, os.cpu_count() or 1),
        )
        try:
            for request in request_iterator:
                yield from session.feed(request)
            yield from session.finish()
        finally:
            session.close()

    def Verify(self, request: face_pb2.VerifyFaceRequest, context: grpc.ServicerContext) -> face_pb2.VerifyFaceResponse:
        rt = self._runtime()
        threshold(rt.card, request.target_far)  # refuse an uncalibrated FAR before any work
        rt.gallery.info(request.person_id)  # NotFound before detecting anything
        vector, model, face = face_probe(rt, request, remaining(context, self._default_deadline))
        decision = decide(rt.gallery.score(request.person_id, vector, model=model), rt.card, request.target_far)
        return face_pb2.VerifyFaceResponse(
            person_id=request.person_id,
            model=model_ref(rt.binding),
            face=face,
            decision={
                "score": decision.score,
                "accepted": decision.accepted,
                "threshold": decision.threshold,
                "target_far": decision.target_far,
            },
        )

    def Identify(
        self, request: face_pb2.IdentifyFaceRequest, context: grpc.ServicerContext
    ) -> face_pb2.IdentifyFaceResponse:
        rt = self._runtime()
        found = ops.search(rt, request, remaining(context, self._default_deadline), probe_fn=face_probe)
        return face_pb2.IdentifyFaceResponse(
            candidates=ops.candidates(found),
            identified=found.known,
            best_id=found.matches[0].identity if found.known else "",
            threshold=found.threshold,
            target_far=found.target_far,
            model=model_ref(rt.binding),
            face=found.info,
            gallery_size=len(rt.gallery),
        )

    def Delete(self, request: face_pb2.DeleteFaceRequest, context: grpc.ServicerContext) -> face_pb2.DeleteFaceResponse:
        self._runtime().gallery.delete(request.person_id, actor=context.peer())
        return face_pb2.DeleteFaceResponse(person_id=request.person_id)

    def List(self, request: face_pb2.ListFacesRequest, context: grpc.ServicerContext) -> face_pb2.ListFacesResponse:
        infos, token, total = ops.list_page(self._runtime(), request.page_size, request.page_token)
        return face_pb2.ListFacesResponse(people=[identity_info(i) for i in infos], next_page_token=token, total=total)
