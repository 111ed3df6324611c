"""Face-track samples (EnrollTracks) kept by a TrackLedger beside the gallery: idempotent by track
id, moving between identities, all or nothing, crash-safe."""

from __future__ import annotations

import numpy as np
import pytest

from serving.errors import InvalidInput, ModelMismatch, NotFound, Overloaded
from serving.gallery import EnrollMode, Gallery, GalleryConfig, ModelBinding, TrackLedger
from tests.serving.gallery.conftest import DIM, MODEL, crash, unit


def _counts(gallery: Gallery, identity: str) -> dict[str, int]:
    with gallery.reader() as conn:
        return conn.enrollment_counts(identity)


def test_sending_a_track_again_replaces_it(open_gallery, rng):
    gallery = open_gallery(modality="face")
    tracks = TrackLedger(gallery)
    a, b, c = unit(rng, 3)
    first = tracks.enroll("ann", "t1", a, model=MODEL)
    assert first.created and not first.replaced and first.num_samples == 1
    tracks.enroll("ann", "t2", b, model=MODEL)
    before = gallery.template("ann").copy()
    again = tracks.enroll("ann", "t2", b, model=MODEL)
    assert again.replaced and not again.created and again.num_samples == 2
    np.testing.assert_allclose(gallery.template("ann"), before, atol=1e-7)
    assert _counts(gallery, "ann")["samples"] == 2 and _counts(gallery, "ann")["tracks"] == 2
    changed = tracks.enroll("ann", "t2", c, model=MODEL)
    expected = (a + c) / np.linalg.norm(a + c)
    np.testing.assert_allclose(gallery.template("ann"), expected, atol=1e-6)
    assert changed.num_samples == 2 and len(gallery) == 1
    assert gallery.search(c, 1, model=MODEL)[0].identity == "ann"


def test_a_track_moves_and_an_emptied_identity_goes(open_gallery, rng):
    gallery = open_gallery(modality="face")
    tracks = TrackLedger(gallery)
    a, b = unit(rng, 2)
    tracks.enroll("ann", "t1", a, model=MODEL)
    moved = tracks.enroll("bob", "t1", b, model=MODEL)
    assert moved.moved_from == "ann" and moved.created and moved.replaced
    with pytest.raises(NotFound):
        gallery.info("ann")
    assert len(gallery) == 1 and tracks.owner("t1") == "bob"
    assert [m.identity for m in gallery.search(b, 5, model=MODEL)] == ["bob"]


def test_a_moved_track_leaves_the_rest_of_its_old_identity(open_gallery, rng):
    gallery = open_gallery(modality="face")
    tracks = TrackLedger(gallery)
    a, b, c = unit(rng, 3)
    gallery.enroll("ann", a, model=MODEL)  # a single-image sample, not a track
    tracks.enroll("ann", "t1", b, model=MODEL)
    tracks.enroll("bob", "t1", c, model=MODEL)
    np.testing.assert_allclose(gallery.template("ann"), a, atol=1e-6)
    assert gallery.info("ann").num_samples == 1 and tracks.owner("t1") == "bob"


def test_replace_and_delete_drop_tracks(open_gallery, rng):
    gallery = open_gallery(modality="face")
    tracks = TrackLedger(gallery)
    tracks.enroll("ann", "t1", unit(rng, 1)[0], model=MODEL)
    gallery.enroll("ann", unit(rng, 1), model=MODEL, mode=EnrollMode.REPLACE)
    assert tracks.owner("t1") is None
    tracks.enroll("ann", "t2", unit(rng, 1)[0], model=MODEL)
    gallery.delete("ann")
    assert tracks.owner("t2") is None


def test_bad_track_ids_and_vectors_are_refused(open_gallery, rng):
    gallery = open_gallery(modality="face")
    tracks = TrackLedger(gallery)
    with pytest.raises(InvalidInput):
        tracks.enroll("ann", "bad id with spaces", unit(rng, 1)[0], model=MODEL)
    with pytest.raises(InvalidInput):
        tracks.enroll("ann", "t1", np.zeros(DIM, np.float32), model=MODEL)
    assert len(gallery) == 0


def test_committed_tracks_survive_a_crash(tmp_path, rng):
    config = GalleryConfig(background=False)
    gallery = Gallery.open(tmp_path / "g", modality="face", dim=DIM, model=MODEL, config=config)
    tracks = TrackLedger(gallery)
    vectors = unit(rng, 5)
    for i, v in enumerate(vectors):
        tracks.enroll(f"p{i % 2}", f"t{i}", v, model=MODEL)
    crash(gallery)
    reopened = Gallery.open(tmp_path / "g", modality="face", dim=DIM, model=MODEL, config=config)
    try:
        assert len(reopened) == 2 and TrackLedger(reopened).owner("t4") == "p0"
        assert reopened.search(vectors[1], 1, model=MODEL)[0].identity == "p1"
        assert reopened.verify_consistency().ok
    finally:
        reopened.close()


def test_a_refused_track_commits_nothing_not_even_the_removal_of_its_old_sample(open_gallery, rng):
    # The over-limit check runs after the old sample was removed inside the transaction: the
    # rollback must bring it back, with the track still owned where it was.
    gallery = open_gallery(modality="face", max_samples=2)
    tracks = TrackLedger(gallery)
    a, b, c, d = unit(rng, 4)
    tracks.enroll("bob", "t1", a, model=MODEL)
    gallery.enroll("ann", np.stack([b, c]), model=MODEL)
    before = _counts(gallery, "ann"), _counts(gallery, "bob"), gallery.template("bob").copy()
    with pytest.raises(Overloaded, match="3 samples"):
        tracks.enroll("ann", "t1", d, model=MODEL)
    assert tracks.owner("t1") == "bob" and (_counts(gallery, "ann"), _counts(gallery, "bob")) == before[:2]
    np.testing.assert_array_equal(gallery.template("bob"), before[2])
    assert gallery.search(a, 1, model=MODEL)[0].identity == "bob" and gallery.verify_consistency().ok
    assert [row["action"] for row in gallery.audit_log("ann")] == ["enroll"]


def test_tracks_of_another_model_are_refused(open_gallery, rng):
    tracks = TrackLedger(open_gallery(modality="face"))
    with pytest.raises(ModelMismatch):
        tracks.enroll("ann", "t1", unit(rng, 1)[0], model=ModelBinding(MODEL.name, MODEL.version + 1))
    assert tracks.owner("t1") is None
