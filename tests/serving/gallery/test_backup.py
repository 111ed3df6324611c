"""Gallery backups (serving.gallery.backup / restore / checkup) on real galleries with small generated data."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import numpy as np
import pytest

from serving.errors import FailedPrecondition, Unavailable
from serving.gallery import Gallery, GalleryConfig, Media, TrackLedger, backup, checkup, generations
from serving.gallery.restore import restore, restore_all
from serving.gallery.types import EnrollMode
from tests.serving.gallery.conftest import DIM, MODEL, unit

CONFIG = GalleryConfig(background=False)


def _open(folder):
    return Gallery.open(folder, modality="speaker", dim=DIM, model=MODEL, config=CONFIG)


def _fill(gallery: Gallery, rng, n: int = 50) -> None:
    gallery.enroll_many(((f"id{i:04d}", unit(rng, 2)) for i in range(n)), model=MODEL)
    gallery.enroll("with-media", unit(rng, 1), model=MODEL, media=[Media(b"RIFF-clip", "wav")])
    TrackLedger(gallery).enroll("tracked", "track-1", unit(rng, 1)[0], model=MODEL)


def _scores(gallery: Gallery, probes: np.ndarray) -> list[list[tuple[str, float]]]:
    return [[(m.identity, round(m.score, 6)) for m in gallery.search(p, 5, model=MODEL)] for p in probes]


@pytest.fixture
def var(tmp_path):
    return tmp_path / "var"


def test_corrupted_store_is_reported_then_restored_with_the_same_scores(var, tmp_path):
    rng = np.random.default_rng(19)
    root = var / "galleries" / "speaker"
    probes = unit(rng, 8)
    with _open(root) as gallery:
        _fill(gallery, rng)
        before = _scores(gallery, probes)
        taken = backup.take(gallery, root, tmp_path / "backups" / "b1", "speaker")
        assert taken.identities == 52 and taken.sequence == gallery.sequence and taken.model == MODEL.name
    manifest = json.loads((tmp_path / "backups/b1/speaker/manifest.json").read_text())
    assert set(manifest["files"]) == {"store.sqlite3", "generation.json"} and manifest["model"]["dim"] == DIM
    with open(root / "store.sqlite3", "r+b") as f:  # what the issue did to the face gallery
        f.write(b"\0" * 100)
    with pytest.raises(Unavailable, match="not a database"):
        _open(root)
    found = checkup.check_unopened(root, "speaker", str(tmp_path / "backups"))
    assert not found.ok and found.newest_backup is not None
    assert "damaged" in found.message() and str(tmp_path / "backups/b1/speaker") in found.message()
    with pytest.raises(FailedPrecondition, match="--force"):
        restore(tmp_path / "backups/b1/speaker", var)
    done = restore(tmp_path / "backups/b1/speaker", var, force=True, config=CONFIG)
    assert done.identities == 52 and done.consistency.ok and done.replaced
    with _open(root) as gallery:
        assert _scores(gallery, probes) == before
        assert gallery.media("with-media") == [Media(b"RIFF-clip", "wav")]
        assert TrackLedger(gallery).owner("track-1") == "tracked"
        assert gallery.integrity_check() == "ok" and gallery.verify_consistency().ok
        assert any(row["action"] == "enroll" for row in gallery.audit_log())


def test_a_backup_with_a_bad_checksum_is_refused_and_changes_nothing(var, tmp_path):
    rng = np.random.default_rng(1)
    with _open(tmp_path / "src") as gallery:
        _fill(gallery, rng, 10)
        taken = backup.take(gallery, tmp_path / "src", tmp_path / "b", "speaker")
    with open(taken.path + "/store.sqlite3", "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(backup.BackupError, match="checksum"):
        restore(taken.path, var)
    assert not (var / "galleries").exists() or list((var / "galleries").iterdir()) == []
    assert backup.newest_usable(tmp_path / "b", "speaker") is None


def test_restore_refuses_a_live_gallery_even_with_force(var, tmp_path):
    rng = np.random.default_rng(2)
    with _open(tmp_path / "src") as gallery:
        _fill(gallery, rng, 5)
        taken = backup.take(gallery, tmp_path / "src", tmp_path / "b", "speaker")
    with _open(var / "galleries" / "speaker"):
        with pytest.raises(FailedPrecondition, match="running gateway"):
            restore(taken.path, var, force=True)
    with pytest.raises(backup.BackupError, match="no gallery backup"):
        restore_all(tmp_path, var)


def test_a_later_generation_is_restored_into_its_own_folder_with_its_active_state(var, tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    gen = generations.Generation("gen-0002", MODEL.name, MODEL.version, DIM, sequence_at_switch=4)
    (src / "gen-0002").mkdir(parents=True)
    generations.write_state(src, generations.State(gen, generations.Generation(".", "old", 1, DIM)))
    with _open(src / "gen-0002") as gallery:
        _fill(gallery, rng, 5)
        taken = backup.take(gallery, src, tmp_path / "b", "speaker")
    restore(taken.path, var, config=CONFIG)
    state = generations.read_state(var / "galleries" / "speaker")
    assert state == generations.State(gen, None)  # the previous generation is not in a backup
    with _open(var / "galleries" / "speaker" / "gen-0002") as gallery:
        assert len(gallery) == 7


def test_writes_during_a_backup_are_in_it_whole_or_not_at_all(tmp_path):
    """APPEND writes change samples, template and change log in one transaction: a backup taken
    meanwhile must show each identity with a template averaging exactly its stored samples."""
    rng = np.random.default_rng(4)
    with _open(tmp_path / "src") as gallery:
        _fill(gallery, rng, 20)
        acked: list[str] = []
        stop = threading.Event()

        def load() -> None:
            i = 0
            while not stop.is_set():
                gallery.enroll(f"live{i}", unit(rng, 3), model=MODEL)
                gallery.enroll("id0000", unit(rng, 1), model=MODEL, mode=EnrollMode.APPEND)
                acked.append(f"live{i}")
                i += 1

        thread = threading.Thread(target=load)
        thread.start()
        try:
            taken = []
            for k in range(3):
                before = list(acked)
                taken.append((before, backup.take(gallery, tmp_path / "src", tmp_path / f"b{k}", "speaker")))
        finally:
            stop.set()
            thread.join()
    for before, summary in taken:
        restored = tmp_path / "restored" / summary.path.split("/")[-2]
        restore(summary.path, restored, config=CONFIG)
        with _open(restored / "galleries" / "speaker") as g:
            names = {info.identity for info in g.list(page_size=10_000)[0]}
            assert set(before) <= names and len(g) == summary.identities
            for name in names:
                with g.reader() as conn:
                    row = conn.execute("SELECT id FROM identities WHERE external_id = ?", (name,)).fetchone()
                    samples = conn.execute("SELECT vector FROM samples WHERE identity_id = ?", row).fetchall()
                mean = np.frombuffer(b"".join(s[0] for s in samples), "<f4").reshape(-1, DIM).mean(axis=0)
                assert np.allclose(g.template(name), mean / np.linalg.norm(mean), atol=1e-5), name
                assert g.info(name).num_samples == len(samples)


def test_the_previous_generation_is_backed_up_and_restored_so_rollback_still_has_it(var, tmp_path):
    rng = np.random.default_rng(5)
    src, old = tmp_path / "src", generations.Generation(".", "old-model", 1, DIM)
    old_binding = generations.Generation(".", "old-model", 1, DIM).binding
    probes = unit(rng, 4)
    with Gallery.open(src, modality="speaker", dim=DIM, model=old_binding, config=CONFIG) as legacy:
        legacy.enroll_many(((f"old{i}", unit(rng, 1)) for i in range(6)), model=old_binding)
        old_scores = [[(m.identity, round(m.score, 6)) for m in legacy.search(p, 3, model=old_binding)] for p in probes]
    gen = generations.Generation("gen-0002", MODEL.name, MODEL.version, DIM, sequence_at_switch=6)
    generations.write_state(src, generations.State(gen, old))
    (src / "gen-0002").mkdir()
    with _open(src / "gen-0002") as gallery:
        _fill(gallery, rng, 5)
        taken = backup.take(gallery, src, tmp_path / "b", "speaker")
    manifest = json.loads((tmp_path / "b/speaker/manifest.json").read_text())
    assert "previous/store.sqlite3" in manifest["files"] and manifest["previous"]["identities"] == 6
    assert backup.verify(taken.path)["previous"]["folder"] == "."
    restore(taken.path, var, config=CONFIG)
    root = var / "galleries" / "speaker"
    assert generations.read_state(root) == generations.State(gen, old)
    with Gallery.open(root, modality="speaker", dim=DIM, model=old_binding, config=CONFIG) as legacy:
        assert [[(m.identity, round(m.score, 6)) for m in legacy.search(p, 3, model=old_binding)] for p in probes] == (
            old_scores
        )
        assert legacy.verify_consistency().ok
    with _open(root / "gen-0002") as gallery:
        assert len(gallery) == 7


def test_a_damaged_previous_generation_in_a_backup_is_refused(var, tmp_path):
    rng = np.random.default_rng(6)
    src, old = tmp_path / "src", generations.Generation(".", MODEL.name, MODEL.version, DIM)
    with _open(src) as legacy:
        _fill(legacy, rng, 3)
    gen = generations.Generation("gen-0002", MODEL.name, MODEL.version, DIM)
    generations.write_state(src, generations.State(gen, old))
    (src / "gen-0002").mkdir()
    with _open(src / "gen-0002") as gallery:
        _fill(gallery, rng, 3)
        taken = backup.take(gallery, src, tmp_path / "b", "speaker")
    with open(taken.path + "/previous/store.sqlite3", "r+b") as f:
        f.write(b"\0" * 100)
    with pytest.raises(backup.BackupError, match="previous/store.sqlite3 does not match its checksum"):
        restore(taken.path, var)
    assert backup.newest_usable(tmp_path / "b", "speaker") is None


def _corrupt_a_page_past_the_header(store) -> None:
    """Break the overflow chain of the stored media blob: the file still opens (header, schema and
    the tables read at open are intact), but SQLite's integrity check fails."""
    data = store.read_bytes()
    page = int.from_bytes(data[16:18], "big")
    at = data.index(b"MEDIA-MARK" * 100, len(data) // 4)  # inside the blob's overflow pages
    with open(store, "r+b") as f:
        f.seek(at // page * page)
        f.write(b"\xff" * 8)  # the overflow page's next-page pointer, and then some


def test_the_start_check_fails_a_store_damaged_past_its_header_naming_the_newest_backup(tmp_path):
    from serving.config import load_config
    from serving.loader import open_gallery

    rng = np.random.default_rng(7)
    root, backups = tmp_path / "var" / "galleries" / "speaker", tmp_path / "backups"
    with _open(root) as gallery:
        _fill(gallery, rng, 5)
        gallery.enroll("big-media", unit(rng, 1), model=MODEL, media=[Media(b"MEDIA-MARK" * 20_000, "wav")])
        backup.take(gallery, root, backups / "old", "speaker")
        time.sleep(0.01)
        newest = backup.take(gallery, root, backups / "new", "speaker")
    assert not (root / "store.sqlite3-wal").exists()  # checkpointed on close: the damage is in the file
    _corrupt_a_page_past_the_header(root / "store.sqlite3")
    with _open(root) as gallery:  # it opens: only an integrity check finds the damage
        assert gallery.integrity_check() != "ok"
    config = load_config(overrides={"paths.var": str(tmp_path / "var"), "paths.backups": str(backups)})
    with pytest.raises(FailedPrecondition) as err:
        open_gallery(config, "speaker", DIM, MODEL)
    assert "damaged" in err.value.message and f"newest usable backup is {newest.path}" in err.value.message
    with _open(root):  # the refused open closed the gallery again (its folder lock is free)
        pass
    skipping = load_config(overrides={"paths.var": str(tmp_path / "var"), "backups.verify_at_start": "false"})
    open_gallery(skipping, "speaker", DIM, MODEL).close()


def test_the_start_check_rebuilds_an_index_that_disagrees_with_the_store(tmp_path):
    from serving.config import load_config
    from serving.loader import open_gallery

    rng = np.random.default_rng(8)
    root = tmp_path / "var" / "galleries" / "speaker"
    with _open(root) as gallery:
        _fill(gallery, rng, 5)
        gallery.snapshot()
    other = unit(rng, 1)[0]
    with sqlite3.connect(root / "store.sqlite3") as conn:  # behind the change log's back
        conn.execute("UPDATE templates SET vector = ? WHERE identity_id = 1", (other.astype("<f4").tobytes(),))
    conn.close()
    with _open(root) as gallery:
        assert not gallery.verify_consistency().ok  # the snapshot still holds the old vector
    config = load_config(overrides={"paths.var": str(tmp_path / "var")})
    gallery = open_gallery(config, "speaker", DIM, MODEL)
    try:
        assert gallery.verify_consistency().ok
        best = gallery.search(other, 1, model=MODEL)[0]
        assert best.score == pytest.approx(1.0, abs=1e-5)
    finally:
        gallery.close()
