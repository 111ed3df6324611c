"""Model binding and the checks made when a gallery folder is opened."""

from __future__ import annotations

import pytest

from serving.errors import InvalidInput, ModelMismatch, Unavailable
from serving.gallery import EnrollMode, ModelBinding
from tests.serving.gallery.conftest import MODEL, unit

OTHER_VERSION = ModelBinding(MODEL.name, MODEL.version + 1)
OTHER_NAME = ModelBinding("another-model", MODEL.version)


@pytest.mark.parametrize("other", [OTHER_VERSION, OTHER_NAME])
def test_every_operation_checks_the_binding(open_gallery, rng, other):
    gallery = open_gallery()
    gallery.enroll("a", unit(rng, 1), model=MODEL)
    calls = [
        lambda: gallery.enroll("b", unit(rng, 1), model=other),
        lambda: gallery.enroll("a", unit(rng, 1), model=other, mode=EnrollMode.APPEND),
        lambda: gallery.enroll_many([("c", unit(rng, 1))], model=other),
        lambda: gallery.search(unit(rng, 1)[0], 1, model=other),
        lambda: gallery.score("a", unit(rng, 1)[0], model=other),
    ]
    for call in calls:
        with pytest.raises(ModelMismatch) as err:
            call()
        assert str(MODEL) in err.value.message and str(other) in err.value.message
    assert len(gallery) == 1 and gallery.info("a").num_samples == 1


def test_binding_must_be_a_model_binding(open_gallery, rng):
    gallery = open_gallery()
    with pytest.raises(InvalidInput):
        gallery.search(unit(rng, 1)[0], 1, model=(MODEL.name, MODEL.version))


def test_reopening_with_another_model(open_gallery, rng):
    gallery = open_gallery()
    gallery.enroll("a", unit(rng, 1), model=MODEL)
    gallery.close()
    with pytest.raises(ModelMismatch):
        open_gallery(model=OTHER_VERSION)
    reopened = open_gallery(model=None)  # explicit: use whatever the folder is bound to
    assert reopened.binding == MODEL and len(reopened) == 1


def test_an_empty_gallery_takes_the_new_binding(open_gallery, rng):
    gallery = open_gallery()
    gallery.enroll("a", unit(rng, 1), model=MODEL)
    gallery.delete("a")
    gallery.close()
    rebound = open_gallery(model=OTHER_VERSION)
    assert rebound.binding == OTHER_VERSION
    assert rebound.audit_log()[0]["action"] == "rebind"
    rebound.enroll("b", unit(rng, 1), model=OTHER_VERSION)
    assert rebound.verify_consistency().ok


def test_folder_checks(open_gallery, rng):
    gallery = open_gallery()
    with pytest.raises(Unavailable):  # one process, one open gallery per folder
        open_gallery()
    gallery.close()
    with pytest.raises(ModelMismatch):
        open_gallery(dim=128)
    with pytest.raises(InvalidInput):
        open_gallery(modality="face")
    with pytest.raises(InvalidInput):
        open_gallery(name="fresh", model=None)
    for bad in ({"modality": "Bad Name"}, {"dim": 0}, {"dim": "64"}):
        with pytest.raises(InvalidInput):
            open_gallery(name="other", **bad)
    assert len(open_gallery()) == 0


def test_closed_gallery_is_unavailable(open_gallery, rng):
    gallery = open_gallery()
    gallery.enroll("a", unit(rng, 1), model=MODEL)
    gallery.close()
    gallery.close()  # idempotent
    for call in (
        lambda: gallery.enroll("b", unit(rng, 1), model=MODEL),
        lambda: gallery.info("a"),
        lambda: gallery.search(unit(rng, 1)[0], 1, model=MODEL),
        lambda: gallery.delete("a"),
    ):
        with pytest.raises(Unavailable):
            call()
