"""Two `toitsu serve` processes on different ports sharing one PostgreSQL gallery: an enrollment
acknowledged by one is verified at once by the other, and identified by it within the stated
delay (serving.gallery.follow: each gateway polls the change log every follow_interval_ms)."""

from __future__ import annotations

import time

import grpc
import pytest

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from tests.integration.test_serve_end_to_end import Server

pytestmark = pytest.mark.integration
INTERVAL_MS = 200
DELAY_S = 1.5  # stated bound: one interval, the apply, and slack for a loaded 2-core CI machine


def test_an_enrollment_on_one_gateway_is_served_by_the_other(models_dir, voices, tmp_path, postgres_dsn):
    sets = ("gallery.backend=postgres", f"gallery.dsn={postgres_dsn}", f"gallery.follow_interval_ms={INTERVAL_MS}")
    a = Server(models_dir, tmp_path / "var-a", tmp_path / "a.log", sets)
    b = Server(models_dir, tmp_path / "var-b", tmp_path / "b.log", sets)
    try:
        assert a.target != b.target
        with grpc.insecure_channel(a.target) as ca, grpc.insecure_channel(b.target) as cb:
            sa, sb = speaker_pb2_grpc.SpeakerServiceStub(ca), speaker_pb2_grpc.SpeakerServiceStub(cb)
            for speaker in range(3):
                clips = [common_pb2.Audio(encoded=voices.clip(speaker, k)) for k in (0, 1)]
                sa.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id=f"v{speaker}", audio=clips), timeout=60)
                acknowledged = time.monotonic()
                probe = common_pb2.Audio(encoded=voices.clip(speaker, 2))
                verify = sb.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id=f"v{speaker}", audio=probe), timeout=60)
                assert verify.decision.accepted, verify
                while True:
                    found = sb.Identify(speaker_pb2.IdentifySpeakerRequest(audio=probe, top_k=3), timeout=60)
                    if found.identified and found.best_id == f"v{speaker}":
                        break
                    assert time.monotonic() - acknowledged < DELAY_S, f"v{speaker} not identified on B: {found}"
            sb.Delete(speaker_pb2.DeleteSpeakerRequest(speaker_id="v0"), timeout=60)
            probe = common_pb2.Audio(encoded=voices.clip(0, 2))
            found = sa.Identify(speaker_pb2.IdentifySpeakerRequest(audio=probe, top_k=3), timeout=60)
            assert "v0" not in [c.id for c in found.candidates]
            with pytest.raises(grpc.RpcError) as gone:
                sa.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id="v0", audio=probe), timeout=60)
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        assert a.stop() == 0 and b.stop() == 0
