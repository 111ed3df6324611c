"""Deletion that leaves nothing (issue 16, item 5): once Delete has returned, no file under var/ —
the SQLite main file, its WAL, the index snapshot, anything else — holds the deleted speaker's
template or the audio it was enrolled from. Checked on a real `toitsu serve` process, by scanning
every byte of every file while it keeps running."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from tests.integration.test_serve_end_to_end import Server
from tests.serving.gallery.conftest import holds_vector

pytestmark = pytest.mark.integration


def _holding(var: Path, embedding: np.ndarray, media: bytes) -> dict[str, list[str]]:
    """What of the deleted speaker is where: the files under ``var`` holding a stretch of its template
    (values 0-15, 128-143) or of the audio it was enrolled from (its first 256 bytes, 256 from the middle)."""
    middle = len(media) // 2
    vectors = {"template[0:16]": embedding[:16], "template[128:144]": embedding[128:144]}
    stretches = {"media[header]": media[:256], "media[middle]": media[middle : middle + 256]}
    found: dict[str, list[str]] = {name: [] for name in (*vectors, *stretches)}
    for path in sorted(p for p in var.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # replaced meanwhile (a snapshot's temporary file): its successor is listed
            continue
        for name, values in vectors.items():
            if holds_vector(data, values):
                found[name].append(str(path.relative_to(var)))
        for name, needle in stretches.items():
            if needle in data:
                found[name].append(str(path.relative_to(var)))
    return found


NOTHING = {"template[0:16]": [], "template[128:144]": [], "media[header]": [], "media[middle]": []}


def _enroll(stub, speaker: str, media: bytes) -> np.ndarray:
    """Enroll ``media`` (stored) as ``speaker``; its embedding, as Embed returns it."""
    clip = common_pb2.Audio(encoded=media)
    stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id=speaker, audio=[clip], store_media=True), timeout=60)
    reply = stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=clip), timeout=60)
    return np.array(reply.embedding.values, np.float32)


def test_after_delete_no_file_under_var_holds_the_template_or_the_media(models_dir, voices, tmp_path):
    var, log = tmp_path / "var", tmp_path / "server.log"
    victims: dict[str, tuple[np.ndarray, bytes]] = {}
    server = Server(models_dir, var, log)
    try:
        with grpc.insecure_channel(server.target) as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            for k in range(4):  # neighbours, so the store and the index are not empty after the deletes
                _enroll(stub, f"keep{k}", voices.clip(k + 2, 0))
            victims["old"] = (_enroll(stub, "old", voices.clip(0, 0)), voices.clip(0, 0))
    finally:
        assert server.stop() == 0  # a clean stop: WAL checkpointed into the main file, index snapshot written
    old = _holding(var, *victims["old"])
    assert "galleries/speaker/store.sqlite3" in old["media[middle]"], old
    assert any(p.startswith("galleries/speaker/index/index-") for p in old["template[0:16]"]), old

    server = Server(models_dir, var, log)
    try:
        with grpc.insecure_channel(server.target) as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            victims["new"] = (_enroll(stub, "new", voices.clip(1, 1)), voices.clip(1, 1))
            new = _holding(var, *victims["new"])
            assert all(new.values()) and "galleries/speaker/store.sqlite3-wal" in new["media[header]"], new
            for speaker in victims:
                stub.Delete(speaker_pb2.DeleteSpeakerRequest(speaker_id=speaker), timeout=60)
            # Scanned as soon as Delete has returned, with the gateway still running.
            for speaker, (embedding, media) in victims.items():
                after = _holding(var, embedding, media)
                assert after == NOTHING, f"{speaker}: still on disk after Delete: {after}"
            listed = stub.List(speaker_pb2.ListSpeakersRequest(), timeout=10)
            assert sorted(s.id for s in listed.speakers) == [f"keep{k}" for k in range(4)]
            same = common_pb2.Audio(encoded=voices.clip(2, 0))
            verify = stub.Verify(speaker_pb2.VerifySpeakerRequest(speaker_id="keep0", audio=same), timeout=60)
            assert verify.decision.score > 0.99  # the neighbours' templates are intact
    finally:
        assert server.stop() == 0
    # Nothing came back with the shutdown's snapshot and checkpoint either.
    for embedding, media in victims.values():
        assert _holding(var, embedding, media) == NOTHING
