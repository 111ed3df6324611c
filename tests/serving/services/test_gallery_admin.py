"""GalleryAdminService and `toitsu gallery …` on real gateways: an online backup taken while a client
enrolls through gRPC, restored into a new var/, then a store corrupted on disk and restored again."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.v1 import gallery_admin_pb2, gallery_admin_pb2_grpc, speaker_pb2, speaker_pb2_grpc
from serving.config import load_config
from serving.errors import Unavailable
from serving.gallery import backup
from serving.server import Gateway
from tests.serving.services.conftest import audio
from toitsu.cli import main as toitsu

ENROLLED = range(4)


def _start(models_dir, var, backups, extra: dict[str, str] | None = None):
    config = load_config(
        overrides={
            **(extra or {}),
            "server.port": "0",
            "server.metrics_port": "0",
            "sound.enabled": "false",
            "face.enabled": "false",
            "paths.models": str(models_dir),
            "paths.var": str(var),
            "paths.backups": str(backups),
        }
    )
    gw = Gateway(config)
    gw.start(background_load=False)
    return gw


def _scores(channel, voices) -> dict[str, float]:
    stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
    return {
        f"spk{i}": stub.Verify(
            speaker_pb2.VerifySpeakerRequest(speaker_id=f"spk{i}", audio=audio(voices.clip(i, 2))), timeout=30
        ).decision.score
        for i in ENROLLED
    }


def _names(channel) -> set[str]:
    page = speaker_pb2_grpc.SpeakerServiceStub(channel).List(
        speaker_pb2.ListSpeakersRequest(page_size=1000), timeout=10
    )
    return {s.id for s in page.speakers}


def test_online_backup_under_enrollment_load_restores_and_a_corrupted_store_comes_back(
    gateway, channel, voices, models_dir, tmp_path, capsys
):
    stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
    for i in ENROLLED:
        stub.Enroll(
            speaker_pb2.EnrollSpeakerRequest(speaker_id=f"spk{i}", audio=[audio(voices.clip(i, 0))]), timeout=60
        )
    acked: list[str] = []
    stop, errors = threading.Event(), []

    def load() -> None:  # another client, enrolling as fast as the gateway answers
        j = 0
        try:
            while not stop.is_set():
                clip = audio(voices.clip(j % 5, 1))
                stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id=f"load{j}", audio=[clip]), timeout=60)
                acked.append(f"load{j}")
                j += 1
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        while len(acked) < 3 and not errors and thread.is_alive():
            stop.wait(0.05)
        before = list(acked)  # acknowledged before the backup started
        target = f"127.0.0.1:{gateway.port}"
        dest = tmp_path / "backups" / "b1"
        assert toitsu(["gallery", "backup", "--modality", "speaker", str(dest), "--target", target, "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)["backups"][0]
        while len(acked) < len(before) + 6 and not errors and thread.is_alive():  # writes after the backup
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join()
    assert not errors
    admin = gallery_admin_pb2_grpc.GalleryAdminServiceStub(channel)
    checked = admin.Verify(gallery_admin_pb2.VerifyGalleryRequest(modality="speaker"), timeout=30)
    assert checked.ok and checked.galleries[0].integrity == "ok"
    live_scores = _scores(channel, voices)
    assert summary["modality"] == "speaker" and summary["path"] == str(dest / "speaker")
    with pytest.raises(grpc.RpcError) as err:  # a backup folder is never overwritten
        admin.Backup(gallery_admin_pb2.BackupRequest(modality="speaker", destination=str(dest)), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:  # no destination, and no paths.backups on this gateway
        admin.Backup(gallery_admin_pb2.BackupRequest(all=True), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "paths.backups" in err.value.details()
    every = admin.Backup(gallery_admin_pb2.BackupRequest(all=True, destination=str(tmp_path / "all")), timeout=30)
    assert [b.modality for b in every.backups] == ["speaker"]  # the enabled modalities

    var2 = tmp_path / "var2"
    assert toitsu(["gallery", "restore", str(dest), "--var", str(var2)]) == 0
    capsys.readouterr()
    gw = _start(models_dir, var2, tmp_path / "backups")
    try:
        assert gw.wait_loaded(60)
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            names = _names(ch)
            assert {f"spk{i}" for i in ENROLLED} | set(before) <= names
            assert len(names) == int(summary["identities"]) and names < set(_names(channel))
            assert _scores(ch, voices) == live_scores
            report = gw.modality("speaker").gallery.verify_consistency()
            assert report.ok and report.store_sequence == int(summary["sequence"])
            for name in names:  # nothing half-written: every identity has its one sample and template
                info = gw.modality("speaker").gallery.info(name)
                assert info.num_samples == 1
    finally:
        gw.stop(grace=1)

    store = var2 / "galleries" / "speaker" / "store.sqlite3"
    with open(store, "r+b") as f:
        f.write(b"\0" * 100)
    gw = _start(models_dir, var2, tmp_path / "backups")
    try:
        assert not gw.wait_loaded(60)  # a damaged store is a final load failure, naming the backup
        with pytest.raises(Unavailable, match=f"damaged.*newest usable backup is {dest / 'speaker'}"):
            gw.modality("speaker")
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            reply = gallery_admin_pb2_grpc.GalleryAdminServiceStub(ch).Verify(
                gallery_admin_pb2.VerifyGalleryRequest(), timeout=30
            )
        assert not reply.ok and reply.galleries[0].newest_backup == str(dest / "speaker")
        assert "damaged" in reply.galleries[0].message and "toitsu gallery restore" in reply.galleries[0].message
    finally:
        gw.stop(grace=1)
    with pytest.raises(SystemExit, match="--force"):  # refused: var2 holds a gallery
        toitsu(["gallery", "restore", str(dest), "--var", str(var2)])
    assert toitsu(["gallery", "restore", str(dest / "speaker"), "--var", str(var2), "--force"]) == 0
    assert toitsu(["gallery", "verify", "--var", str(var2)]) == 0
    gw = _start(models_dir, var2, tmp_path / "backups")
    try:
        assert gw.wait_loaded(60)
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            assert _scores(ch, voices) == live_scores
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        gw.stop(grace=1)


def test_retention_prunes_by_age_only_scheduled_backups_and_the_gauge_counts_those_under_paths_backups(
    models_dir, tmp_path, voices
):
    backups = tmp_path / "backups"
    gw = _start(models_dir, tmp_path / "var", backups, {"backups.keep": "0", "backups.max_age_seconds": "1.5"})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id="a", audio=[audio(voices.clip(0, 0))]), timeout=60)
            admin = gallery_admin_pb2_grpc.GalleryAdminServiceStub(ch)
            age = _wait_for_age(gw)
            assert age == float("inf")  # no backup yet
            admin.Backup(gallery_admin_pb2.BackupRequest(all=True, destination=str(tmp_path / "elsewhere")), timeout=30)
            assert _wait_for_age(gw) == float("inf")  # not under paths.backups: Verify would not find it
            admin.Backup(gallery_admin_pb2.BackupRequest(all=True, destination=str(backups / "manual")), timeout=30)
            assert 0 <= _wait_for_age(gw) < 1
        (first,) = gw.backups.run_once(["speaker"])
        time.sleep(2)  # first and manual are now older than max_age_seconds
        (second,) = gw.backups.run_once(["speaker"])
        assert not Path(first.path).exists() and not Path(first.path).parent.exists()
        assert Path(second.path).is_dir() and (backups / "manual" / "speaker" / "manifest.json").is_file()
        assert backup.newest_usable(backups, "speaker").path == second.path
    finally:
        gw.stop(grace=1)


def _wait_for_age(gw: Gateway) -> float:
    """The age gauge as /metrics would serve it (it appears once the start-up scan has run)."""
    for _ in range(100):
        value = gw.metrics.registry.get_sample_value("toitsu_gallery_backup_age_seconds", {"modality": "speaker"})
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError("no toitsu_gallery_backup_age_seconds{modality='speaker'}")


def test_a_failed_scheduled_backup_is_counted_and_prunes_nothing(models_dir, tmp_path):
    backups = tmp_path / "backups"
    gw = _start(models_dir, tmp_path / "var", backups, {"backups.keep": "1"})
    try:
        (first,) = gw.backups.run_once(["speaker"])
        gw.modality("speaker").gallery.close()  # the next backup cannot read the store
        assert gw.backups.run_once(["speaker"]) == []
        failures = gw.metrics.registry.get_sample_value("toitsu_gallery_backup_failures_total", {"modality": "speaker"})
        assert failures == 1
        assert backup.newest_usable(backups, "speaker").path == first.path  # keep = 1, yet not pruned
        assert [p.name for p in backups.glob("scheduled-*/*")] == ["speaker"]
    finally:
        gw.stop(grace=1)
