"""Enroll modes, validation, delete, listing, media and metadata."""

from __future__ import annotations

import numpy as np
import pytest

from serving.errors import AlreadyExists, InvalidInput, NotFound, Overloaded
from serving.gallery import EnrollMode, Media
from tests.serving.gallery.conftest import MODEL, unit


def _mean_template(*blocks: np.ndarray) -> np.ndarray:
    samples = np.concatenate(blocks)
    samples = samples / np.linalg.norm(samples, axis=1, keepdims=True)
    mean = samples.mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_create_append_replace(open_gallery, rng):
    gallery = open_gallery()
    first, second, third = 2.0 * unit(rng, 3), unit(rng, 2), unit(rng, 4)
    created = gallery.enroll("alice", first, model=MODEL, metadata={"team": "a"})
    assert created.created and created.num_samples == 3 and created.identity == "alice"
    np.testing.assert_allclose(gallery.template("alice"), _mean_template(first), atol=1e-6)

    with pytest.raises(AlreadyExists):
        gallery.enroll("alice", second, model=MODEL)
    appended = gallery.enroll("alice", second, model=MODEL, mode=EnrollMode.APPEND, metadata={"site": "x"})
    assert not appended.created and appended.num_samples == 5 and appended.sequence > created.sequence
    np.testing.assert_allclose(gallery.template("alice"), _mean_template(first, second), atol=1e-6)
    assert gallery.info("alice").metadata == {"team": "a", "site": "x"}  # APPEND merges

    replaced = gallery.enroll("alice", third, model=MODEL, mode=EnrollMode.REPLACE, metadata={"team": "b"})
    assert replaced.num_samples == 4 and replaced.sequence > appended.sequence
    np.testing.assert_allclose(gallery.template("alice"), _mean_template(third), atol=1e-6)
    info = gallery.info("alice")
    assert info.metadata == {"team": "b"} and info.num_samples == 4 and info.model == MODEL
    assert info.updated_at >= info.created_at
    assert len(gallery) == 1 and gallery.verify_consistency().ok

    for mode in (EnrollMode.APPEND, EnrollMode.REPLACE):
        with pytest.raises(NotFound):
            gallery.enroll("bob", first, model=MODEL, mode=mode)
    assert gallery.search(third.mean(axis=0), 1, model=MODEL)[0].identity == "alice"


def test_one_vector_is_one_sample(open_gallery, rng):
    gallery = open_gallery()
    assert gallery.enroll("solo", unit(rng, 1)[0], model=MODEL).num_samples == 1


@pytest.mark.parametrize("identity", ["", "x" * 129, "has space", "slash/no", "é", "new\nline", 7, None, b"bytes"])
def test_bad_identity(open_gallery, rng, identity):
    gallery = open_gallery()
    with pytest.raises(InvalidInput):
        gallery.enroll(identity, unit(rng, 1), model=MODEL)
    with pytest.raises(InvalidInput):
        gallery.delete(identity)
    assert len(gallery) == 0


def test_good_identity_characters(open_gallery, rng):
    gallery = open_gallery()
    for identity in ("a", "x" * 128, "user@example.com", "spk:001-B_v2.3"):
        gallery.enroll(identity, unit(rng, 1), model=MODEL)
    assert len(gallery) == 4


@pytest.mark.parametrize(
    "embeddings",
    [
        np.zeros((0, 64), np.float32),
        np.ones((2, 63), np.float32),
        np.ones((2, 2, 64), np.float32),
        np.zeros((1, 64), np.float32),
        np.full((1, 64), np.inf, np.float32),
        np.full((1, 64), np.nan),
        np.ones((1, 64), np.int64),
        np.ones((1, 64), bool),
        "not an array",
    ],
)
def test_bad_embeddings(open_gallery, embeddings):
    gallery = open_gallery()
    with pytest.raises(InvalidInput):
        gallery.enroll("carol", embeddings, model=MODEL)
    assert len(gallery) == 0


def test_samples_that_cancel_out(open_gallery, rng):
    gallery = open_gallery()
    v = unit(rng, 1)
    with pytest.raises(InvalidInput):
        gallery.enroll("zero", np.concatenate([v, -v]), model=MODEL)


def test_limits(open_gallery, rng):
    gallery = open_gallery(max_samples=4, max_media_bytes=10, max_metadata_bytes=64)
    with pytest.raises(Overloaded):
        gallery.enroll("a", unit(rng, 5), model=MODEL)
    gallery.enroll("a", unit(rng, 3), model=MODEL)
    with pytest.raises(Overloaded):  # APPEND past the per-identity limit
        gallery.enroll("a", unit(rng, 2), model=MODEL, mode=EnrollMode.APPEND)
    with pytest.raises(Overloaded):
        gallery.enroll("b", unit(rng, 1), model=MODEL, media=[Media(b"x" * 11, "wav")])
    with pytest.raises(Overloaded):
        gallery.enroll("b", unit(rng, 1), model=MODEL, metadata={"k": "v" * 100})
    with pytest.raises(InvalidInput):
        gallery.enroll("b", unit(rng, 1), model=MODEL, metadata={"k": 1})
    with pytest.raises(InvalidInput):
        gallery.enroll("b", unit(rng, 1), model=MODEL, media=[Media(b"x", "")])
    with pytest.raises(InvalidInput):
        gallery.enroll("b", unit(rng, 1), model=MODEL, mode="create")
    assert gallery.info("a").num_samples == 3 and len(gallery) == 1


def test_failed_enrollment_leaves_nothing(open_gallery, rng):
    gallery = open_gallery(max_samples=4)
    gallery.enroll("a", unit(rng, 2), model=MODEL, media=[Media(b"first", "wav")])
    with pytest.raises(Overloaded):  # fails inside the transaction, after reading the old samples
        gallery.enroll("a", unit(rng, 3), model=MODEL, mode=EnrollMode.APPEND, media=[Media(b"second", "wav")])
    with gallery._store.reader() as conn:
        assert conn.enrollment_counts("a") == {
            "identities": 1,
            "templates": 1,
            "samples": 2,
            "media": 1,
            "tracks": 0,
        }
        assert conn.max_sequence() == 1
    assert gallery.verify_consistency().ok


def test_media_is_kept_and_replaced(open_gallery, rng):
    gallery = open_gallery()
    gallery.enroll("m", unit(rng, 2), model=MODEL, media=[Media(b"one", "wav"), Media(b"two", "flac")])
    assert gallery.info("m").has_media
    assert gallery.media("m") == [Media(b"one", "wav"), Media(b"two", "flac")]
    gallery.enroll("m", unit(rng, 1), model=MODEL, mode=EnrollMode.APPEND, media=[Media(b"three", "wav")])
    assert len(gallery.media("m")) == 3
    gallery.enroll("m", unit(rng, 1), model=MODEL, mode=EnrollMode.REPLACE)
    assert gallery.media("m") == [] and not gallery.info("m").has_media


def test_delete_removes_everything_and_audits(open_gallery, rng, tmp_path, backend):
    gallery = open_gallery()
    secret = b"MEDIA-" + bytes(rng.integers(0, 256, 4000, dtype=np.uint8))
    samples = unit(rng, 3)
    gallery.enroll("dave", samples, model=MODEL, media=[Media(secret, "wav")], actor="enroller")
    gallery.enroll("erin", unit(rng, 2), model=MODEL)
    with gallery._store.reader() as conn:
        row_id = conn.find_identity("dave")[0]
        stored = [
            r[0]
            for r in conn.execute(
                "SELECT vector FROM samples WHERE identity_id = ? UNION ALL "
                "SELECT vector FROM templates WHERE identity_id = ?",
                (row_id, row_id),
            )
        ]
    gallery.snapshot()
    gallery.delete("dave", actor="admin-1")

    with pytest.raises(NotFound):
        gallery.template("dave")
    with pytest.raises(NotFound):
        gallery.info("dave")
    with pytest.raises(NotFound):
        gallery.delete("dave")
    assert [m.identity for m in gallery.search(samples[0], 5, model=MODEL)] == ["erin"]
    with gallery._keeper.reading() as index:
        assert not index.contains(row_id)
    with gallery._store.reader() as conn:
        for table in ("templates", "samples", "media"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE identity_id = ?", (row_id,)).fetchone()[0] == 0
    audit = gallery.audit_log("dave")
    assert [a["action"] for a in audit] == ["delete", "enroll"]
    assert audit[0]["actor"] == "admin-1" and audit[0]["detail"] == {"samples": 3, "media": 1}
    assert gallery.verify_consistency().ok and len(gallery) == 1

    gallery.close()  # checkpoint: the bytes must be gone from the database file, not just unlinked
    assert len(stored) == 4
    if backend == "postgres":
        return  # the server's files are its own (VACUUM reclaims deleted rows); the rows are gone, above
    blob = (tmp_path / "g" / "store.sqlite3").read_bytes()
    assert secret[:64] not in blob and not any(vector in blob for vector in stored)
    snapshots = list((tmp_path / "g" / "index").glob("index-*.bin"))
    assert len(snapshots) == 1 and stored[-1] not in snapshots[0].read_bytes()


def test_list_pages_cover_every_identity_once(open_gallery, rng):
    gallery = open_gallery()
    names = [f"id-{i:03d}" for i in rng.permutation(257)]
    gallery.enroll_many(((n, unit(rng, 1)) for n in names), model=MODEL, batch_size=100)
    seen, token, pages = [], "", 0
    while True:
        page, token = gallery.list(page_size=10, page_token=token)
        seen += [i.identity for i in page]
        pages += 1
        if pages == 3:  # changes during the listing do not duplicate or skip the others
            gallery.delete(seen[0])
            gallery.enroll("id-zzz", unit(rng, 1), model=MODEL)
        if not token:
            break
    assert pages == 26
    assert seen == sorted(set(names) | {"id-zzz"})
    assert gallery.list(page_size=1000)[1] == ""
    for bad in ("garbage!", "eyJ4IjogMX0", "bm90IGpzb24"):
        with pytest.raises(InvalidInput):
            gallery.list(page_token=bad)
    for size in (0, -5, 10_001, 1.5):
        with pytest.raises(InvalidInput):
            gallery.list(page_size=size)


def test_enroll_many_batches_are_atomic(open_gallery, rng):
    gallery = open_gallery()
    assert gallery.enroll_many([("a", unit(rng, 1)), ("b", unit(rng, 2))], model=MODEL) == 2
    with pytest.raises(InvalidInput):
        gallery.enroll_many([("c", unit(rng, 1)), ("c", unit(rng, 1))], model=MODEL)
    with pytest.raises(AlreadyExists):
        gallery.enroll_many([("d", unit(rng, 1)), ("a", unit(rng, 1))], model=MODEL)
    with pytest.raises(InvalidInput):
        gallery.enroll_many([("e", unit(rng, 1)), ("bad id", unit(rng, 1))], model=MODEL)
    assert sorted(i.identity for i in gallery.list()[0]) == ["a", "b"]
    assert gallery.info("b").num_samples == 2 and gallery.verify_consistency().ok


def test_audit_and_change_log_rows(open_gallery, rng):
    gallery = open_gallery()
    gallery.enroll("a", unit(rng, 1), model=MODEL, actor="ipv4:1.2.3.4")
    gallery.enroll("a", unit(rng, 1), model=MODEL, mode=EnrollMode.APPEND)
    gallery.delete("a")
    with gallery.reader() as conn:
        ops = [r[0] for r in conn.execute("SELECT op FROM changes ORDER BY seq")]
    assert ops == ["upsert", "upsert", "delete"]
    entry = gallery.audit_log("a")[-1]
    assert entry["actor"] == "ipv4:1.2.3.4" and entry["detail"]["model"] == str(MODEL)
