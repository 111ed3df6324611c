"""Activating speaker model versions on an in-process gateway with real models: re-embedding with
catch-up, the swap, another embedding size, policies, rollback to the exact old scores, purge,
cancellation and bad requests that change nothing."""

from __future__ import annotations

import json
import threading

import grpc
import numpy as np
import pytest

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from serving.errors import Cancelled, FailedPrecondition, InvalidInput, NotFound, Unavailable
from serving.gallery import Media
from serving.gallery import generations as gens
from tests.serving.activation.conftest import PROJECTED, start_gateway

SPEAKERS = {f"spk{i}": i for i in range(4)}


@pytest.fixture
def gateway(model_repo, tmp_path):
    gw = start_gateway(model_repo, tmp_path / "var", "speaker")
    yield gw
    gw.stop(grace=0)


@pytest.fixture
def stub(gateway):
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield speaker_pb2_grpc.SpeakerServiceStub(channel)


def _audio(voices, i, k):
    return common_pb2.Audio(encoded=voices.clip(i, k))


def _enroll(stub, voices, name, i, store_media=True, clips=(0, 1)):
    request = speaker_pb2.EnrollSpeakerRequest(
        speaker_id=name, audio=[_audio(voices, i, k) for k in clips], store_media=store_media
    )
    return stub.Enroll(request, timeout=60)


def _verify(stub, voices, name, i, k=3):
    return stub.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id=name, audio=_audio(voices, i, k)), timeout=60)


def _scores(stub, voices):
    return {(n, j): _verify(stub, voices, n, j).decision.score for n in SPEAKERS for j in SPEAKERS.values()}


def _root(gateway):
    return gateway.config.var_dir / "galleries" / "speaker"


def test_activate_another_dim_then_rollback_restores_the_exact_scores(gateway, stub, voices):
    for name, i in SPEAKERS.items():
        _enroll(stub, voices, name, i)
    before = _scores(stub, voices)
    events = []
    report = gateway.activator.activate("speaker", PROJECTED, 1, progress=events.append)

    assert (report.from_dim, report.to_dim, report.reembedded, report.samples) == (256, 192, 4, 8)
    phases = [e.phase for e in events]
    for phase in ("loading", "re-embedding", "final-delta", "committing", "switched", "done"):
        assert phase in phases
    assert phases.index("final-delta") < phases.index("switched") < phases.index("done")
    state = gens.read_state(_root(gateway))
    assert state.active.folder == report.generation and state.active.dim == 192 and state.previous.folder == "."
    folder = _root(gateway) / report.generation
    assert (folder / "COMPLETE.json").is_file() and (folder / "activation-report.png").stat().st_size > 1000
    saved = json.loads((folder / "activation-report.json").read_text())
    assert saved["old"]["card_eer"] == pytest.approx(0.177, abs=0.01) and saved["new"]["dim"] == 192
    assert saved["new"]["gallery"]["genuine"]["count"] == 8 and saved["new"]["gallery"]["impostor"]["count"] > 0

    reply = _verify(stub, voices, "spk1", 1)
    assert reply.model.name == PROJECTED and reply.decision.accepted
    assert not _verify(stub, voices, "spk1", 2).decision.accepted
    embedded = stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=_audio(voices, 0, 0)), timeout=60)
    assert len(embedded.embedding.values) == 192
    found = stub.Identify(speaker_pb2.IdentifySpeakerRequest(audio=_audio(voices, 2, 3)), timeout=60)
    assert found.best_id == "spk2" and found.model.name == PROJECTED

    back = gateway.activator.rollback("speaker")
    assert (back.kind, back.to_model, back.to_dim, back.generation) == ("rollback", "resemblyzer-ge2e", 256, ".")
    assert _scores(stub, voices) == before  # exactly the previous gallery
    assert gens.read_state(_root(gateway)).previous.folder == report.generation

    purged = gateway.activator.purge("speaker")
    assert purged.folder == report.generation and not folder.exists()
    with pytest.raises(FailedPrecondition, match="no previous"):
        gateway.activator.rollback("speaker")
    assert _scores(stub, voices) == before


def test_changes_during_the_reembed_are_caught_up_and_a_waiting_write_is_refused(gateway, stub, voices):
    for name, i in SPEAKERS.items():
        _enroll(stub, voices, name, i)
    old = gateway.modality("speaker")
    clip = voices.clip(5, 0)
    outcome = {}

    def during(event):
        if event.phase == "re-embedding" and "late" not in outcome:
            outcome["late"] = _enroll(stub, voices, "late", 5)  # enrolled after the start position
            stub.Delete(speaker_pb2.DeleteSpeakerRequest(speaker_id="spk3"), timeout=30)
        if event.phase == "final-delta":  # writes are paused: this one waits, then finds the gallery retired

            def write():
                vectors, _ = old.embed([common_pb2.Audio(encoded=clip)], 30)
                try:
                    old.gallery.enroll("blocked", vectors, model=old.binding, media=[Media(clip, "encoded")])
                    outcome["blocked"] = "committed"
                except Unavailable as exc:
                    outcome["blocked"] = exc.message

            outcome["thread"] = threading.Thread(target=write)
            outcome["thread"].start()

    report = gateway.activator.activate("speaker", "resemblyzer-ge2e", 2, progress=during)
    outcome["thread"].join(30)
    assert "switched" in outcome["blocked"] and "retry" in outcome["blocked"]
    assert report.changes_replayed >= 2
    listed = {s.id for s in stub.List(speaker_pb2.ListSpeakersRequest(), timeout=10).speakers}
    assert listed == {"spk0", "spk1", "spk2", "late"}
    assert _verify(stub, voices, "late", 5).model.version == 2
    new = gateway.modality("speaker")
    assert new.gallery.verify_consistency().ok
    # Same graph, so the re-embedded templates equal the old ones.
    for name in ("spk0", "late"):
        np.testing.assert_allclose(new.gallery.template(name), old.gallery.template(name), atol=1e-5)
    with pytest.raises(Unavailable, match="retry"):
        old.gallery.delete("spk0")  # the retired generation takes no write


def test_identities_without_media_follow_the_policy(model_repo, tmp_path, voices):
    def fresh(name):
        gw = start_gateway(model_repo, tmp_path / name, "speaker")
        ch = grpc.insecure_channel(f"127.0.0.1:{gw.port}")
        stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
        _enroll(stub, voices, "with", 0)
        _enroll(stub, voices, "bare", 1, store_media=False)
        return gw, ch, stub

    gw, ch, stub = fresh("refuse")
    try:
        with pytest.raises(FailedPrecondition, match="'bare' \\(no stored media\\)") as err:
            gw.activator.activate("speaker", "resemblyzer-ge2e", 2)
        assert err.value.identities == {"bare": "no stored media"}
        assert not (_root(gw) / "ACTIVE").exists() and gens.folders(_root(gw)) == []
        assert _verify(stub, voices, "bare", 1).model.version == 1
    finally:
        ch.close()
        gw.stop(grace=0)

    gw, ch, stub = fresh("drop")
    try:
        report = gw.activator.activate("speaker", "resemblyzer-ge2e", 2, policy="drop")
        assert report.dropped == ["bare"] and report.identities == 1
        with pytest.raises(grpc.RpcError) as err:
            _verify(stub, voices, "bare", 1)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        ch.close()
        gw.stop(grace=0)

    gw, ch, stub = fresh("keep")
    try:
        report = gw.activator.activate("speaker", PROJECTED, 1, policy="keep-old")
        assert report.kept_on_old == ["bare"]
        with pytest.raises(grpc.RpcError) as err:
            _verify(stub, voices, "bare", 1)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "resemblyzer-ge2e v1" in err.value.details() and PROJECTED in err.value.details()
        found = stub.Identify(speaker_pb2.IdentifySpeakerRequest(audio=_audio(voices, 1, 3)), timeout=60)
        assert "bare" not in [c.id for c in found.candidates]
        _enroll(stub, voices, "bare", 1)  # enrolled again: on the new version now
        assert _verify(stub, voices, "bare", 1).model.name == PROJECTED
    finally:
        ch.close()
        gw.stop(grace=0)


def test_the_new_version_is_served_after_a_restart_and_rollback_still_works(model_repo, tmp_path, voices):
    var = tmp_path / "var"
    gw = start_gateway(model_repo, var, "speaker")
    with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
        stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
        _enroll(stub, voices, "ann", 0)
        before = _verify(stub, voices, "ann", 0).decision.score
        gw.activator.activate("speaker", PROJECTED, 1)
    gw.stop(grace=0)
    gw = start_gateway(model_repo, var, "speaker")  # the config still names resemblyzer-ge2e
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            assert _verify(stub, voices, "ann", 0).model.name == PROJECTED
            _enroll(stub, voices, "bo", 1)  # after the swap: replayed into the old gallery on rollback
            stub.Delete(speaker_pb2.DeleteSpeakerRequest(speaker_id="ann"), timeout=30)
            _enroll(stub, voices, "ann", 0)
            report = gw.activator.rollback("speaker")
            assert report.changes_replayed >= 2 and report.to_dim == 256
            assert _verify(stub, voices, "ann", 0).decision.score == pytest.approx(before, abs=1e-5)
            assert _verify(stub, voices, "bo", 1).model.name == "resemblyzer-ge2e"
            assert gw.modality("speaker").gallery.verify_consistency().ok
    finally:
        gw.stop(grace=0)


def test_bad_requests_change_nothing(gateway, stub, voices):
    _enroll(stub, voices, "ann", 0)
    act = gateway.activator
    cases = [
        (lambda: act.activate("speaker", "no-such-model", 1), NotFound, "no-such-model"),
        (lambda: act.activate("speaker", "resemblyzer-ge2e", 7), NotFound, "7"),
        (lambda: act.activate("speaker", "toitsu-sound-formula", 1), InvalidInput, "sound model"),
        (lambda: act.activate("speaker", "resemblyzer-ge2e", 1), FailedPrecondition, "already"),
        (lambda: act.activate("speaker", "resemblyzer-ge2e", 2, policy="maybe"), InvalidInput, "policy"),
        (lambda: act.activate("voice", "resemblyzer-ge2e", 2), InvalidInput, "unknown modality"),
        (lambda: act.rollback("speaker"), FailedPrecondition, "no previous"),
        (lambda: act.purge("speaker"), FailedPrecondition, "no previous"),
        (lambda: act.activate("speaker", "resemblyzer-ge2e", 2, cancelled=lambda: True), Cancelled, "cancelled"),
    ]
    for call, error, text in cases:
        with pytest.raises(error, match=text):
            call()
        assert not (_root(gateway) / "ACTIVE").exists() and gens.folders(_root(gateway)) == []
        assert _verify(stub, voices, "ann", 0).model.version == 1
    _enroll(stub, voices, "bo", 1)  # the active gallery still takes writes


def test_a_configured_model_of_another_size_serves_and_activation_reembeds_the_gallery(model_repo, tmp_path, voices):
    var = tmp_path / "var"
    gw = start_gateway(model_repo, var, "speaker")
    with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
        _enroll(speaker_pb2_grpc.SpeakerServiceStub(ch), voices, "ann", 0)
    gw.stop(grace=0)
    # The README's case: the config names a 192-d model over the 256-d gallery. It used to be UNAVAILABLE.
    gw = start_gateway(model_repo, var, "speaker", **{"speaker.model": PROJECTED})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                _verify(stub, voices, "ann", 0)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "activate" in err.value.details()
            assert stub.List(speaker_pb2.ListSpeakersRequest(), timeout=10).total == 1
            report = gw.activator.activate("speaker", PROJECTED, 1)
            assert (report.from_dim, report.to_dim, report.from_model) == (256, 192, "resemblyzer-ge2e")
            assert _verify(stub, voices, "ann", 0).decision.accepted
            gw.activator.rollback("speaker")  # loads the gallery's own model, not the configured one
            assert _verify(stub, voices, "ann", 0).model.name == "resemblyzer-ge2e"
    finally:
        gw.stop(grace=0)
