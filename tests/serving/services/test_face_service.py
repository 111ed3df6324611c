"""FaceService in-process with the default pack (MTCNN → dlib 5 points → dlib ResNet): detect,
embed, enroll, verify, identify, batch face-track enrollment, bad input, the server staying up."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.v1 import common_pb2, face_pb2, face_pb2_grpc
from serving.config import load_config
from serving.server import Gateway
from training.data import real_faces as rf
from training.data.face_scenes import encode, face_crop, frames, no_face, photo

MAX_MEGAPIXELS = 1.2  # the group photo (1280×886) fits; the "oversized" image below does not


@pytest.fixture(scope="module")
def gateway(models_dir, tmp_path_factory):
    config = load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": "0",
            "speaker.enabled": "false",
            "sound.enabled": "false",
            "paths.models": str(models_dir),
            "paths.var": str(tmp_path_factory.mktemp("var")),
            "face.max_megapixels": str(MAX_MEGAPIXELS),
            "server.max_message_mb": "8",
        }
    )
    gw = Gateway(config)
    gw.start(background_load=False)
    assert gw.wait_loaded(60)
    yield gw
    gw.stop(grace=1)


@pytest.fixture(scope="module")
def channel(gateway):
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}", options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return face_pb2_grpc.FaceServiceStub(channel)


@pytest.fixture
def clean(stub):
    """Start a test with an empty face gallery."""
    for person in stub.List(face_pb2.ListFacesRequest(), timeout=10).people:
        stub.Delete(face_pb2.DeleteFaceRequest(person_id=person.id), timeout=10)
    return stub


def image(data: bytes) -> face_pb2.Image:
    return face_pb2.Image(encoded=data)


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def test_detect_finds_the_astronaut_with_landmarks_and_quality(stub):
    reply = stub.Detect(face_pb2.DetectFacesRequest(image=image(encode(photo("astronaut"), "PNG"))), timeout=30)
    assert reply.image_info.width == 512 and reply.image_info.faces == 1 and len(reply.faces) == 1
    face = reply.faces[0]
    assert 160 < face.x1 < 200 and 60 < face.y1 < 110 and 240 < face.x2 < 290 and face.probability > 0.99
    assert len(face.landmarks) == 5 and face.landmarks[0].x < face.landmarks[1].x  # left eye, then right
    assert 0 < face.quality.score <= 1 and face.quality.size > 60 and face.quality.frontal > 0.5
    assert reply.detector.name == "mtcnn"


def test_detect_on_a_faceless_image_returns_no_face(stub):
    reply = stub.Detect(face_pb2.DetectFacesRequest(image=image(no_face())), timeout=30)
    assert list(reply.faces) == [] and reply.image_info.faces == 0


def test_embed_gives_unit_vectors_that_separate_two_people(stub):
    a = stub.Embed(face_pb2.EmbedFacesRequest(image=image(encode(photo("astronaut")))), timeout=30).faces
    a2 = stub.Embed(face_pb2.EmbedFacesRequest(image=image(frames("astronaut", 1, seed=3)[0])), timeout=30).faces
    b = stub.Embed(face_pb2.EmbedFacesRequest(image=image(encode(photo("grace-hopper")))), timeout=30).faces
    vectors = [np.array(x[0].embedding.values) for x in (a, a2, b)]
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors) and len(vectors[0]) == 128
    assert a[0].embedding.model.name == "dlib-resnet-v1"
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.03


def test_embed_of_an_aligned_crop_needs_the_models_size(stub):
    chip = np.asarray(face_crop("astronaut", margin=1.2).resize((150, 150)))
    reply = stub.Embed(face_pb2.EmbedFacesRequest(aligned=image(encode(chip, "PNG"))), timeout=30)
    face = reply.faces[0].face
    assert len(reply.faces) == 1 and len(face.landmarks) == 0 and face.quality.sharpness > 0  # no detection
    wrong = np.zeros((100, 100, 3), np.uint8)
    assert (
        _code(lambda: stub.Embed(face_pb2.EmbedFacesRequest(aligned=image(encode(wrong, "PNG"))), timeout=30))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_enroll_verify_identify(clean):
    stub = clean
    reply = stub.Enroll(
        face_pb2.EnrollFaceRequest(person_id="eileen", images=[image(encode(photo("astronaut")))]), timeout=30
    )
    assert reply.created and reply.num_samples == 1
    stub.Enroll(
        face_pb2.EnrollFaceRequest(person_id="grace", images=[image(encode(photo("grace-hopper")))]), timeout=30
    )
    same = stub.Verify(
        face_pb2.VerifyFaceRequest(person_id="eileen", image=image(frames("astronaut", 1, seed=9)[0])), timeout=30
    )
    other = stub.Verify(
        face_pb2.VerifyFaceRequest(person_id="grace", image=image(frames("astronaut", 1, seed=9)[0])), timeout=30
    )
    assert same.decision.accepted and not other.decision.accepted
    assert same.decision.threshold == other.decision.threshold and same.face.probability > 0.9
    found = stub.Identify(face_pb2.IdentifyFaceRequest(image=image(frames("grace-hopper", 1, seed=2)[0])), timeout=30)
    assert found.identified and found.best_id == "grace" and found.gallery_size == 2
    assert (
        _code(
            lambda: stub.Enroll(
                face_pb2.EnrollFaceRequest(person_id="eileen", images=[image(encode(photo("astronaut")))]), timeout=30
            )
        )
        == grpc.StatusCode.ALREADY_EXISTS
    )
    assert (
        _code(lambda: stub.Verify(face_pb2.VerifyFaceRequest(person_id="nobody", image=image(no_face())), timeout=30))
        == grpc.StatusCode.NOT_FOUND
    )


def test_bad_images_get_clear_statuses_and_the_server_stays_up(stub, channel):
    cases = {
        "garbage bytes": (face_pb2.Image(encoded=b"\x89PNG not really"), grpc.StatusCode.INVALID_ARGUMENT),
        "empty": (face_pb2.Image(), grpc.StatusCode.INVALID_ARGUMENT),
        "raw, wrong size": (
            face_pb2.Image(raw=face_pb2.RawImage(data=b"\0" * 10, width=4, height=4, format=face_pb2.RGB8)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "raw, no format": (
            face_pb2.Image(raw=face_pb2.RawImage(data=b"\0" * 48, width=4, height=4)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "oversized": (image(encode(np.zeros((1300, 1000, 3), np.uint8), "PNG")), grpc.StatusCode.RESOURCE_EXHAUSTED),
        "tiny": (image(encode(np.zeros((8, 8, 3), np.uint8), "PNG")), grpc.StatusCode.INVALID_ARGUMENT),
    }
    for name, (bad, expected) in cases.items():
        assert _code(lambda: stub.Detect(face_pb2.DetectFacesRequest(image=bad), timeout=30)) == expected, name
    assert (
        _code(lambda: stub.Identify(face_pb2.IdentifyFaceRequest(image=image(no_face())), timeout=30))
        == grpc.StatusCode.INVALID_ARGUMENT
    )  # no face to compare
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    raw = photo("astronaut")
    reply = stub.Detect(
        face_pb2.DetectFacesRequest(
            image=face_pb2.Image(
                raw=face_pb2.RawImage(data=raw[:, :, ::-1].tobytes(), width=512, height=512, format=face_pb2.BGR8)
            )
        ),
        timeout=30,
    )
    assert len(reply.faces) == 1  # BGR raw pixels are read as such


# --- EnrollTracks -------------------------------------------------------------------------------


def _track(
    track_id: str, person: str, data: list[bytes], chunk: int = 4, **fields
) -> list[face_pb2.EnrollTracksRequest]:
    parts = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [[]]
    return [
        face_pb2.EnrollTracksRequest(
            track_id=track_id,
            person_id=person if n == 0 else "",
            frames=[face_pb2.Frame(image=image(f)) for f in part],
            end=n == len(parts) - 1,
            **(fields if n == 0 else {}),
        )
        for n, part in enumerate(parts)
    ]


def _stream(stub, requests):
    replies = list(stub.EnrollTracks(iter(requests), timeout=120))
    results = {r.result.track_id: r.result for r in replies if r.WhichOneof("event") == "result"}
    progress = [r.progress for r in replies if r.WhichOneof("event") == "progress"]
    return results, progress


def _gallery(stub) -> dict[str, tuple[int, np.ndarray]]:
    people = stub.List(face_pb2.ListFacesRequest(), timeout=10).people
    request = face_pb2.EmbedFacesRequest(image=image(encode(photo("astronaut"))))
    probe = stub.Embed(request, timeout=30).faces[0].embedding
    scores = {
        c.id: c.score
        for c in stub.Identify(face_pb2.IdentifyFaceRequest(embedding=probe, top_k=10), timeout=30).candidates
    }
    return {p.id: (p.num_samples, scores[p.id]) for p in people}


def test_enroll_tracks_selects_good_frames_and_is_idempotent(clean):
    stub = clean
    tracks = {
        "cam1-0001": ("eileen", frames("astronaut", 10, seed=1, blur_every=3)),
        "cam1-0002": ("eileen", frames("astronaut", 6, seed=2)),
        "cam2-0001": ("grace", frames("grace-hopper", 8, seed=3)),
        "cam2-0002": ("nobody", [no_face(s) for s in range(3)]),
    }
    requests = [r for tid, (person, data) in tracks.items() for r in _track(tid, person, data)]
    requests[0].options.CopyFrom(face_pb2.TrackOptions(best_frames=4, progress_every=4))
    results, progress = _stream(stub, requests)
    assert set(results) == set(tracks)
    first = results["cam1-0001"]
    assert first.accepted and first.frames_received == 10 and first.frames_with_face == 10
    assert first.frames_used == 4 and first.quality.min_used >= first.quality.mean_all * 0.9
    assert first.quality.mean_used > first.quality.mean_all  # the blurred frames were left out
    assert results["cam2-0001"].accepted and results["cam2-0001"].person_id == "grace"
    rejected = results["cam2-0002"]
    assert not rejected.accepted and "no face" in rejected.reason and rejected.sequence == 0
    assert [p.frames_total for p in progress] == [4, 8, 14, 20, 24]  # each 4th frame of a track
    assert max(p.tracks_done for p in progress) == 2
    before = _gallery(stub)
    assert before["eileen"][0] == 2 and before["grace"][0] == 1 and "nobody" not in before

    again, _ = _stream(stub, requests)  # the same tracks again: replaced, nothing added
    assert all(again[t].replaced for t in ("cam1-0001", "cam1-0002", "cam2-0001"))
    after = _gallery(stub)
    assert after.keys() == before.keys()
    for person, (samples, score) in before.items():
        assert after[person][0] == samples and after[person][1] == pytest.approx(score, abs=1e-6)


def test_enroll_tracks_structure_errors_end_the_stream_but_keep_committed_tracks(clean):
    stub = clean
    good = _track("t-ok", "grace", frames("grace-hopper", 3, seed=4))
    changed = [
        face_pb2.EnrollTracksRequest(track_id="t-bad", person_id="a", frames=[]),
        face_pb2.EnrollTracksRequest(track_id="t-bad", person_id="b", end=True),
    ]
    replies = []
    with pytest.raises(grpc.RpcError) as info:
        for reply in stub.EnrollTracks(iter(good + changed), timeout=60):
            replies.append(reply)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "started as person" in info.value.details()
    assert any(r.result.track_id == "t-ok" and r.result.accepted for r in replies)
    assert [p.id for p in stub.List(face_pb2.ListFacesRequest(), timeout=10).people] == ["grace"]
    for bad, code in (
        ([face_pb2.EnrollTracksRequest(track_id="", person_id="x")], grpc.StatusCode.INVALID_ARGUMENT),
        ([face_pb2.EnrollTracksRequest(track_id="t", end=True)], grpc.StatusCode.INVALID_ARGUMENT),
    ):
        assert _code(lambda: list(stub.EnrollTracks(iter(bad), timeout=30))) == code


def test_a_track_without_its_end_is_not_committed(clean):
    stub = clean
    unfinished = _track("t-open", "eileen", frames("astronaut", 3, seed=5))
    unfinished[-1].end = False
    results, _ = _stream(stub, unfinished)
    assert not results["t-open"].accepted and "ended before" in results["t-open"].reason
    assert stub.List(face_pb2.ListFacesRequest(), timeout=10).total == 0


def test_a_track_moves_to_another_person(clean):
    stub = clean
    data = frames("astronaut", 3, seed=6)
    _stream(stub, _track("t1", "first-name", data))
    results, _ = _stream(stub, _track("t1", "second-name", data))
    assert results["t1"].replaced and "moved from" in results["t1"].reason
    assert [p.id for p in stub.List(face_pb2.ListFacesRequest(), timeout=10).people] == ["second-name"]


def test_embedding_probes_from_another_model_are_refused(clean):
    stub = clean
    stub.Enroll(face_pb2.EnrollFaceRequest(person_id="eileen", images=[image(encode(photo("astronaut")))]), timeout=30)
    probe = common_pb2.Embedding(values=[0.1] * 128, model=common_pb2.ModelRef(name="other-model", version=1))
    assert (
        _code(lambda: stub.Verify(face_pb2.VerifyFaceRequest(person_id="eileen", embedding=probe), timeout=30))
        == grpc.StatusCode.FAILED_PRECONDITION
    )


# --- real faces: the detection floor and the quality floor (issue 12) ---------------------------


@pytest.fixture(scope="module")
def group_jpeg() -> bytes:
    try:
        return rf.photo_file("group").read_bytes()
    except rf.MissingPhoto as exc:
        pytest.fail(f"{exc}: `make venv` installs it (a missing photo must fail, not skip)")


def _heads(faces) -> list[str | None]:
    return [rf.head_of(np.array([f.x1, f.y1, f.x2, f.y2]), rf.GROUP_HEADS) for f in faces]


def test_detect_returns_the_six_people_of_the_group_photo_and_no_other_region(stub, group_jpeg):
    reply = stub.Detect(face_pb2.DetectFacesRequest(image=image(group_jpeg)), timeout=60)
    assert reply.image_info.faces == rf.GROUP_PEOPLE == len(reply.faces)
    assert sorted(_heads(reply.faces), key=str) == sorted(rf.GROUP_HEADS)  # one face per person, nothing else
    assert all(f.probability >= 0.9 for f in reply.faces)  # face.min_probability's default
    # The request's min_probability still overrides the default: lower, MTCNN's own thresholds
    # also pass regions of the table (the non-faces at p ≈ 0.86), and every person stays.
    low = stub.Detect(face_pb2.DetectFacesRequest(image=image(group_jpeg), min_probability=0.5), timeout=60)
    heads = _heads(low.faces)
    assert set(rf.GROUP_HEADS) <= set(heads) and None in heads
    assert all(0.5 <= f.probability < 0.9 for f, h in zip(low.faces, heads) if h is None)
    for bad in (-0.1, 1.5):
        request = face_pb2.DetectFacesRequest(image=image(group_jpeg), min_probability=bad)
        assert _code(lambda: stub.Detect(request, timeout=60)) == grpc.StatusCode.INVALID_ARGUMENT


def test_enroll_tracks_keeps_every_person_of_the_group_photo_by_default(clean, group_jpeg):
    """Faces of 90-110 px, sharp, frontal to about 45° of yaw: none refused by the default floor;
    then each person, probed with a frame of their own, is identified as themselves."""
    stub = clean
    people = [f for f in rf.real_faces() if f.photo == "group"]
    requests = []
    for face in people:
        data = [encode(f) for f in rf.track_frames(face, 5, seed=1)]
        requests += _track(f"group-{face.name}", face.name, data, chunk=5)
    results, _ = _stream(stub, requests)
    refused = {t: r.reason for t, r in results.items() if not r.accepted}
    assert not refused and len(results) == rf.GROUP_PEOPLE
    assert all(r.frames_used >= 1 and r.quality.min_used >= 0.25 for r in results.values())
    for face in people:
        probe = encode(rf.track_frames(face, 1, seed=7, margin=0.3)[0])
        found = stub.Identify(face_pb2.IdentifyFaceRequest(image=image(probe)), timeout=30)
        assert found.best_id == face.name and found.identified, (face.name, found.best_id)


def test_enroll_tracks_still_refuses_tiny_and_blurred_faces(clean):
    """The astronaut's face shrunk to 20 px, or blurred by σ = 6 % of its width: rejected."""
    stub = clean
    full = photo("astronaut")
    x1, y1, x2, y2 = rf.PHOTO_HEADS["astronaut"]
    crop, box = rf.crop_around(full, np.array([x1, y1, x2, y2], np.float64), margin=0.6)
    width = 87.0  # the astronaut's face (MTCNN's box, the README's photo): 87 px wide
    tiny = rf.downscale(crop, 20 / width)
    canvas = np.full((200, 240, 3), 128, np.uint8)
    canvas[40 : 40 + tiny.shape[0], 60 : 60 + tiny.shape[1]] = tiny
    blurred = rf.gaussian_blur(crop, 0.06 * width)
    requests = _track("tiny", "eileen", [encode(canvas)] * 3) + _track("blurred", "eileen", [encode(blurred)] * 3)
    results, _ = _stream(stub, requests)
    for track in ("tiny", "blurred"):
        result = results[track]
        assert not result.accepted and result.sequence == 0, track
        assert result.frames_with_face == 0 or "quality ≥ 0.25" in result.reason, (track, result.reason)
    assert results["blurred"].frames_with_face == 3 and results["tiny"].frames_with_face == 3  # found, refused
    assert stub.List(face_pb2.ListFacesRequest(), timeout=10).total == 0
