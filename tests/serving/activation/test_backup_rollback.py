"""A gallery backed up after an activation, restored into a new var/: the restored gateway serves
the new version and can still roll back to the previous one (the backup holds that generation),
replaying what changed after the swap, with the exact old scores."""

from __future__ import annotations

import grpc
import pytest

from protos.v1 import gallery_admin_pb2, gallery_admin_pb2_grpc, speaker_pb2_grpc
from serving.gallery import generations as gens
from serving.gallery.restore import restore_all
from tests.serving.activation.conftest import PROJECTED, start_gateway
from tests.serving.activation.test_speaker_activation import _enroll, _verify


def test_a_restored_backup_still_rolls_back_to_the_previous_generation(model_repo, tmp_path, voices):
    gw = start_gateway(model_repo, tmp_path / "var", "speaker")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            _enroll(stub, voices, "ann", 0)
            before = _verify(stub, voices, "ann", 0).decision.score
            gw.activator.activate("speaker", PROJECTED, 1)
            _enroll(stub, voices, "bo", 1)  # after the swap: only in the new generation's change log
            request = gallery_admin_pb2.BackupRequest(modality="speaker", destination=str(tmp_path / "b"))
            (taken,) = gallery_admin_pb2_grpc.GalleryAdminServiceStub(ch).Backup(request, timeout=60).backups
        assert taken.model == PROJECTED and taken.identities == 2
    finally:
        gw.stop(grace=0)

    var2 = tmp_path / "var2"
    restore_all(tmp_path / "b", var2)
    state = gens.read_state(var2 / "galleries" / "speaker")
    assert state is not None and state.previous is not None and state.previous.model == "resemblyzer-ge2e"
    gw = start_gateway(model_repo, var2, "speaker")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            assert _verify(stub, voices, "ann", 0).model.name == PROJECTED
            report = gw.activator.rollback("speaker")
            assert report.changes_replayed >= 1 and report.to_dim == 256
            assert _verify(stub, voices, "ann", 0).decision.score == pytest.approx(before, abs=1e-5)
            assert _verify(stub, voices, "bo", 1).model.name == "resemblyzer-ge2e"
            assert gw.modality("speaker").gallery.verify_consistency().ok
    finally:
        gw.stop(grace=0)
