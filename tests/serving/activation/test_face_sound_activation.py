"""Face activation (images detected again, face-track chips re-embedded, one sample per track) and
sound activation, on in-process gateways with the default pack and a version 2 of each model."""

from __future__ import annotations

import grpc
import numpy as np

from protos.v1 import common_pb2, face_pb2, face_pb2_grpc, sound_pb2, sound_pb2_grpc
from serving.gallery import TrackLedger
from tests.serving.activation.conftest import start_gateway
from training.data.face_scenes import encode, frames, photo


def _image(data: bytes) -> face_pb2.Image:
    return face_pb2.Image(encoded=data)


def _track(track_id: str, person: str, data: list[bytes]) -> face_pb2.EnrollTracksRequest:
    return face_pb2.EnrollTracksRequest(
        track_id=track_id, person_id=person, frames=[face_pb2.Frame(image=_image(f)) for f in data], end=True
    )


def test_face_activation_reembeds_images_and_tracks_and_rolls_back(model_repo, tmp_path):
    gw = start_gateway(model_repo, tmp_path / "var", "face", **{"face.store_media": "true"})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}", options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
            stub = face_pb2_grpc.FaceServiceStub(ch)
            stub.Enroll(face_pb2.EnrollFaceRequest(person_id="eileen", images=[_image(encode(photo("astronaut")))]))
            requests = [
                _track("cam1-1", "grace", frames("grace-hopper", 4, seed=3)),
                _track("cam1-2", "grace", frames("grace-hopper", 3, seed=4)),
            ]
            results = [r.result for r in stub.EnrollTracks(iter(requests), timeout=120) if r.HasField("result")]
            assert all(r.accepted for r in results), results
            old = gw.modality("face")
            before = {p: old.gallery.template(p) for p in ("eileen", "grace")}
            probe = _image(frames("grace-hopper", 1, seed=9)[0])
            score = stub.Verify(face_pb2.VerifyFaceRequest(person_id="grace", image=probe), timeout=60).decision.score

            report = gw.activator.activate("face", "dlib-resnet-v1", 2)
            assert (report.reembedded, report.samples, report.without_media) == (2, 3, {})
            new = gw.modality("face")
            for person, template in before.items():  # the same graph: chips and images give the same vectors
                np.testing.assert_allclose(new.gallery.template(person), template, atol=1e-4)
            assert TrackLedger(new.gallery).owner("cam1-2") == "grace"
            assert new.gallery.info("grace").num_samples == 2  # one sample per track, as enrolled
            reply = stub.Verify(face_pb2.VerifyFaceRequest(person_id="grace", image=probe), timeout=60)
            assert reply.model.version == 2 and abs(reply.decision.score - score) < 1e-4
            again = [r.result for r in stub.EnrollTracks(iter(requests[:1]), timeout=120) if r.HasField("result")]
            assert again[0].replaced and new.gallery.info("grace").num_samples == 2  # still idempotent by track

            gw.activator.rollback("face")
            reply = stub.Verify(face_pb2.VerifyFaceRequest(person_id="grace", image=probe), timeout=60)
            assert reply.model.version == 1 and abs(reply.decision.score - score) < 1e-4
            assert gw.modality("face").gallery.info("grace").num_samples == 2
    finally:
        gw.stop(grace=0)


def test_sound_activation(model_repo, tmp_path, voices):
    gw = start_gateway(model_repo, tmp_path / "var", "sound")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = sound_pb2_grpc.SoundServiceStub(ch)
            for label, i in (("a", 0), ("b", 1)):
                clips = [common_pb2.Audio(encoded=voices.clip(i, k)) for k in range(2)]
                stub.EnrollClass(sound_pb2.EnrollClassRequest(label=label, audio=clips, store_media=True), timeout=60)
            probe = sound_pb2.ClassifySoundRequest(audio=common_pb2.Audio(encoded=voices.clip(1, 3)))
            before = stub.Classify(probe, timeout=60)
            report = gw.activator.activate("sound", "toitsu-sound-formula", 2)
            assert report.reembedded == 2 and report.to_version == 2
            after = stub.Classify(probe, timeout=60)
            assert after.model.version == 2 and after.candidates[0].id == before.candidates[0].id
            assert abs(after.candidates[0].score - before.candidates[0].score) < 1e-4
    finally:
        gw.stop(grace=0)


def test_stored_chips_of_another_size_are_resized_and_another_geometry_is_refused(model_repo, tmp_path):
    import io

    import pytest
    from PIL import Image

    from serving.errors import InvalidInput
    from serving.gallery import Media

    gw = start_gateway(model_repo, tmp_path / "var", "face")
    try:
        rt = gw.modality("face")
        own = rt.embedder.alignment
        face = rt.pipeline.main_face(photo("astronaut"))
        small = Image.fromarray(face.chip).resize((112, 112), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        small.save(buffer, format="PNG")
        chip = Media(buffer.getvalue(), "png/aligned-chip")
        resized = rt.embed_media([chip], chips_from=own.model_copy(update={"chip_size": 112}))
        direct = rt.embed([face], 30)
        assert resized.shape == direct.shape and float(resized[0] @ direct[0]) > 0.9
        with pytest.raises(InvalidInput, match="cannot be re-cut"):
            rt.embed_media([chip], chips_from=own.model_copy(update={"chip_size": 112, "padding": 0.5}))
    finally:
        gw.stop(grace=0)
