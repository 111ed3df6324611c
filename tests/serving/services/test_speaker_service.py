"""SpeakerService in-process on port 0: the happy path with generated voices."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from protos.v1 import common_pb2, speaker_pb2
from tests.conftest import SPEAKER_DIM, SPEAKER_MODEL
from tests.serving.services.conftest import audio


def _enroll(stub, voices, speaker: int, clips=(0, 1), **kw):
    return stub.Enroll(
        speaker_pb2.EnrollSpeakerRequest(
            speaker_id=f"spk{speaker}", audio=[audio(voices.clip(speaker, k)) for k in clips], **kw
        ),
        timeout=60,
    )


def test_embed_returns_a_unit_vector_and_names_the_model(stub, voices, health):
    reply = stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(0, 0))), timeout=30)
    vector = np.array(reply.embedding.values)
    assert vector.shape == (SPEAKER_DIM,) and abs(np.linalg.norm(vector) - 1) < 1e-4
    assert reply.embedding.model.name == SPEAKER_MODEL and reply.embedding.model.version == 1
    assert 1.0 < reply.audio_info.speech_seconds <= reply.audio_info.input_seconds
    assert reply.audio_info.input_sample_rate == 16000 and health() == "SERVING"


def test_enroll_verify_identify_with_calibrated_decisions(stub, voices):
    for speaker in range(4):
        created = _enroll(stub, voices, speaker)
        assert created.created and created.num_samples == 2 and created.model.name == SPEAKER_MODEL
    genuine = stub.Verify(
        speaker_pb2.VerifySpeakerRequest(speaker_id="spk0", audio=audio(voices.clip(0, 2))), timeout=30
    )
    impostor = stub.Verify(
        speaker_pb2.VerifySpeakerRequest(speaker_id="spk0", audio=audio(voices.clip(1, 2))), timeout=30
    )
    assert genuine.decision.accepted and not impostor.decision.accepted
    assert genuine.decision.target_far == pytest.approx(0.01) and genuine.decision.score > impostor.decision.score
    strict = stub.Verify(
        speaker_pb2.VerifySpeakerRequest(speaker_id="spk0", audio=audio(voices.clip(0, 2)), target_far=0.001),
        timeout=30,
    )
    assert strict.decision.threshold > genuine.decision.threshold
    found = stub.Identify(speaker_pb2.IdentifySpeakerRequest(audio=audio(voices.clip(2, 3)), top_k=3), timeout=30)
    assert found.identified and found.best_id == "spk2" and found.gallery_size == 4
    assert [c.id for c in found.candidates][0] == "spk2" and len(found.candidates) == 3
    unknown = stub.Identify(speaker_pb2.IdentifySpeakerRequest(audio=audio(voices.clip(5, 0))), timeout=30)
    assert not unknown.identified and unknown.best_id == "" and not any(c.accepted for c in unknown.candidates)


def test_embedding_probe_scores_like_audio_and_other_versions_are_refused(stub, voices):
    _enroll(stub, voices, 0)
    embedded = stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(0, 2))), timeout=30).embedding
    by_audio = stub.Verify(
        speaker_pb2.VerifySpeakerRequest(speaker_id="spk0", audio=audio(voices.clip(0, 2))), timeout=30
    )
    by_vector = stub.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id="spk0", embedding=embedded), timeout=30)
    assert by_vector.decision.score == pytest.approx(by_audio.decision.score, abs=1e-5)
    stale = common_pb2.Embedding(values=embedded.values, model=common_pb2.ModelRef(name=SPEAKER_MODEL, version=9))
    with pytest.raises(grpc.RpcError) as err:
        stub.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id="spk0", embedding=stale), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "v9" in err.value.details()


def test_enroll_modes_delete_and_list(stub, voices):
    _enroll(stub, voices, 0)
    with pytest.raises(grpc.RpcError) as err:
        _enroll(stub, voices, 0)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    appended = _enroll(stub, voices, 0, clips=(2,), mode=common_pb2.APPEND)
    assert not appended.created and appended.num_samples == 3
    assert _enroll(stub, voices, 0, clips=(3,), mode=common_pb2.REPLACE).num_samples == 1
    with pytest.raises(grpc.RpcError) as err:
        _enroll(stub, voices, 4, mode=common_pb2.APPEND)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for speaker in (1, 2):
        _enroll(stub, voices, speaker, clips=(0,))
    seen, token = [], ""
    while True:
        page = stub.List(speaker_pb2.ListSpeakersRequest(page_size=2, page_token=token), timeout=10)
        seen += [s.id for s in page.speakers]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == ["spk0", "spk1", "spk2"] and page.total == 3
    stub.Delete(speaker_pb2.DeleteSpeakerRequest(speaker_id="spk1"), timeout=10)
    for call in (
        lambda: stub.Delete(speaker_pb2.DeleteSpeakerRequest(speaker_id="spk1"), timeout=10),
        lambda: stub.Verify(
            speaker_pb2.VerifySpeakerRequest(speaker_id="spk1", audio=audio(voices.clip(1, 2))), timeout=10
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert stub.List(speaker_pb2.ListSpeakersRequest(), timeout=10).total == 2


def test_store_media_keeps_the_audio_for_re_embedding(gateway, stub, voices):
    _enroll(stub, voices, 3, clips=(0,), store_media=True)
    info = stub.List(speaker_pb2.ListSpeakersRequest(), timeout=10).speakers[0]
    assert info.has_media
    assert gateway.modality("speaker").gallery.media("spk3")[0].data == voices.clip(3, 0)


def test_metrics_count_requests_by_status(gateway, stub, voices):
    stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(0, 0))), timeout=30)
    with pytest.raises(grpc.RpcError):
        stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=audio(b"garbage")), timeout=30)
    sample = gateway.metrics.registry.get_sample_value
    assert sample("toitsu_requests_total", {"method": "SpeakerService.Embed", "code": "OK"}) == 1
    assert sample("toitsu_requests_total", {"method": "SpeakerService.Embed", "code": "INVALID_ARGUMENT"}) == 1
    assert sample("toitsu_batch_size_count", {"model": f"{SPEAKER_MODEL}/1"}) >= 1


def test_reflection_lists_the_services(channel):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"toitsu.v1.SpeakerService", "grpc.health.v1.Health"} <= names
