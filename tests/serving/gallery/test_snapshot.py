"""Snapshots, change-log replay, rebuilds, and the automatic index choice."""

from __future__ import annotations

import json

import numpy as np

from serving.gallery import EnrollMode, GalleryConfig
from serving.gallery import index as ix
from tests.serving.gallery.conftest import MODEL, crash, noisy, unit


def _results(gallery, probes: np.ndarray) -> list[list[tuple[str, float]]]:
    return [[(m.identity, round(m.score, 5)) for m in gallery.search(p, 5, model=MODEL)] for p in probes]


def _churn(gallery, rng) -> None:
    """Changes after the last snapshot: creates, appends, replaces and deletes."""
    gallery.enroll_many(((f"late{i}", unit(rng, 1)) for i in range(20)), model=MODEL)
    for i in range(5):
        gallery.enroll(f"id{i}", unit(rng, 1), model=MODEL, mode=EnrollMode.APPEND)
        gallery.enroll(f"id{i + 5}", unit(rng, 2), model=MODEL, mode=EnrollMode.REPLACE)
        gallery.delete(f"id{i + 10}")
    gallery.delete("late3")


def test_changes_after_the_snapshot_are_replayed(open_gallery, rng):
    gallery = open_gallery(snapshot_every=10_000, snapshot_after_delete=False)
    vectors = unit(rng, 300)
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(vectors)), model=MODEL)
    gallery.snapshot()
    _churn(gallery, rng)
    probes = noisy(rng, vectors[:30])
    before, sequence = _results(gallery, probes), gallery.index_info().sequence
    crash(gallery)

    reopened = open_gallery()
    assert reopened.index_info().loaded_from.startswith("snapshot + ")
    assert int(reopened.index_info().loaded_from.split()[2]) == sequence - 300  # every later change replayed
    assert _results(reopened, probes) == before
    assert reopened.verify_consistency().ok and len(reopened) == 300 + 20 - 5 - 1


def test_close_snapshots_and_reopen_loads_it(open_gallery, rng):
    gallery = open_gallery(snapshot_every=10_000)
    vectors = unit(rng, 200)
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(vectors)), model=MODEL)
    _churn(gallery, rng)
    probes = noisy(rng, vectors[:20])
    before = _results(gallery, probes)
    gallery.close()
    reopened = open_gallery()
    assert reopened.index_info().loaded_from == "snapshot + 0 replayed changes"
    assert _results(reopened, probes) == before and reopened.verify_consistency().ok


def _corrupt_data(folder) -> None:
    data = next(folder.glob("index-*.bin"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))


def _truncate_data(folder) -> None:
    data = next(folder.glob("index-*.bin"))
    data.write_bytes(data.read_bytes()[:100])


def _garbage_manifest(folder) -> None:
    (folder / "index.json").write_text("{not json")


def _other_model(folder) -> None:
    manifest = json.loads((folder / "index.json").read_text())
    manifest["model"]["version"] += 1
    (folder / "index.json").write_text(json.dumps(manifest))


def _ahead_of_store(folder) -> None:
    manifest = json.loads((folder / "index.json").read_text())
    manifest["sequence"] += 1000
    (folder / "index.json").write_text(json.dumps(manifest))


def _missing(folder) -> None:
    for path in folder.iterdir():
        path.unlink()


def test_bad_snapshots_are_rebuilt_from_the_store(open_gallery, rng, tmp_path):
    vectors = unit(rng, 150)
    probes = noisy(rng, vectors[:15])
    for spoil in (_corrupt_data, _truncate_data, _garbage_manifest, _other_model, _ahead_of_store, _missing):
        name = spoil.__name__
        gallery = open_gallery(name=name)
        gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(vectors)), model=MODEL)
        before = _results(gallery, probes)
        gallery.close()
        spoil(tmp_path / name / "index")
        reopened = open_gallery(name=name)
        assert reopened.index_info().loaded_from.startswith("store"), name
        assert _results(reopened, probes) == before, name
        assert reopened.verify_consistency().ok, name
        assert json.loads((tmp_path / name / "index" / "index.json").read_text())["sequence"] == 150, name


def test_a_snapshot_from_another_gallery_is_not_used(open_gallery, rng, tmp_path):
    a, b = open_gallery(name="a"), open_gallery(name="b")
    a.enroll_many(((f"id{i}", v) for i, v in enumerate(unit(rng, 50))), model=MODEL)
    b.enroll_many(((f"id{i}", v) for i, v in enumerate(unit(rng, 50))), model=MODEL)
    a.close()
    b.close()
    for path in (tmp_path / "a" / "index").iterdir():
        (tmp_path / "b" / "index" / path.name).write_bytes(path.read_bytes())
    reopened = open_gallery(name="b")
    assert "another store" in reopened.index_info().loaded_from and reopened.verify_consistency().ok


def test_automatic_snapshots(open_gallery, rng, tmp_path):
    gallery = open_gallery(snapshot_every=25, snapshot_fraction=0.0, snapshot_after_delete=False)
    for i in range(60):
        gallery.enroll(f"id{i}", unit(rng, 1), model=MODEL)
    manifest = json.loads((tmp_path / "g" / "index" / "index.json").read_text())
    assert manifest["sequence"] == 50 and manifest["kind"] == "flat" and manifest["count"] == 50
    assert manifest["model"] == {"name": MODEL.name, "version": MODEL.version}
    gallery.delete("id0")
    assert json.loads((tmp_path / "g" / "index" / "index.json").read_text())["sequence"] == 50
    assert len(list((tmp_path / "g" / "index").glob("index-*.bin"))) == 1


def test_index_kind_follows_the_size(open_gallery, rng):
    gallery = open_gallery(flat_max=1500, flat_return=0.5, snapshot_after_delete=False)
    vectors = unit(rng, 1600)
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(vectors)), model=MODEL, batch_size=400)
    assert gallery.index_info().kind == "pq-rerank"
    for i in range(500):  # 1100 left: above flat_max * flat_return, stays approximate
        gallery.delete(f"id{i}")
    assert gallery.index_info().kind == "pq-rerank" and gallery.verify_consistency().ok
    for i in range(500, 900):  # 700 left: below 750, back to exact
        gallery.delete(f"id{i}")
    info = gallery.index_info()
    assert info.kind == "flat" and info.size == 700 and gallery.verify_consistency().ok
    assert gallery.search(vectors[1000], 1, model=MODEL)[0].identity == "id1000"


def test_dead_slots_are_compacted(open_gallery, rng):
    gallery = open_gallery(flat_max=1000, compact_ratio=0.1, snapshot_after_delete=False)
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(unit(rng, 1500))), model=MODEL)
    for i in range(100):
        gallery.enroll(f"id{i}", unit(rng, 1), model=MODEL, mode=EnrollMode.REPLACE)
    assert gallery.index_info().params["dead"] == 100
    for i in range(100, 200):  # past 10% of the slots: compacted
        gallery.enroll(f"id{i}", unit(rng, 1), model=MODEL, mode=EnrollMode.REPLACE)
    info = gallery.index_info()
    assert info.kind == "pq-rerank" and info.params["dead"] < 100 and info.size == 1500
    assert gallery.verify_consistency().ok


def test_choose_kind_rules():
    config = GalleryConfig(flat_max=5000, flat_return=0.5)
    assert ix.choose_kind(5000, None, config) == "flat"
    assert ix.choose_kind(5001, None, config) == "pq-rerank"
    assert ix.choose_kind(3000, "pq-rerank", config) == "pq-rerank"
    assert ix.choose_kind(2500, "pq-rerank", config) == "flat"
    assert ix.choose_kind(3000, "flat", config) == "flat"
    assert ix.choose_kind(ix.MIN_PQ_SIZE - 1, None, GalleryConfig(flat_max=0)) == "flat"


def test_background_rebuild_and_snapshot(open_gallery, rng):
    gallery = open_gallery(background=True, flat_max=1000, snapshot_every=100)
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(unit(rng, 1200))), model=MODEL, batch_size=300)
    assert gallery.wait_idle(60)
    assert gallery.index_info().kind == "pq-rerank" and gallery.index_info().last_error is None
    assert gallery.verify_consistency().ok


def test_pq_index_reloads_and_keeps_working(open_gallery, rng):
    gallery = open_gallery(flat_max=1000, snapshot_after_delete=False)
    vectors = unit(rng, 1200)
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(vectors)), model=MODEL)
    gallery.delete("id7")
    probes = noisy(rng, vectors[:20])
    before = _results(gallery, probes)
    params = gallery.index_info().params
    gallery.close()
    reopened = open_gallery(flat_max=1000, snapshot_after_delete=False)
    info = reopened.index_info()
    assert info.kind == "pq-rerank" and info.params == params and info.loaded_from.startswith("snapshot")
    assert _results(reopened, probes) == before
    fresh = unit(rng, 30)
    reopened.enroll_many(((f"new{i}", v) for i, v in enumerate(fresh)), model=MODEL)
    reopened.delete("id8")
    assert reopened.search(fresh[3], 1, model=MODEL)[0].identity == "new3"
    assert reopened.verify_consistency().ok and len(reopened) == 1200 - 2 + 30


def test_verify_consistency_reports_divergence(open_gallery, rng):
    gallery = open_gallery()
    gallery.enroll_many(((f"id{i}", v) for i, v in enumerate(unit(rng, 20))), model=MODEL)
    assert gallery.verify_consistency().ok
    index = gallery._keeper._index  # white box: damage the derived index behind the gallery's back
    index.remove(np.array([3]))
    index.upsert(np.array([5, 999]), unit(rng, 2))
    report = gallery.verify_consistency()
    assert not report.ok
    assert report.missing_from_index == ("id2",) and report.mismatched == ("id4",)  # row ids start at 1
    assert report.extra_in_index == (999,) and report.store_count == 20 and report.index_count == 20
    gallery.rebuild_index()
    assert gallery.verify_consistency().ok
