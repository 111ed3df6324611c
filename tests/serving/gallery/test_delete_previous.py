"""A Delete also removes the identity from the previous gallery generation (what a rollback returns
to), loaded or not: no file of either generation keeps its template or its media (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.errors import NotFound
from serving.gallery import Gallery, GalleryConfig, Media, ModelBinding
from serving.gallery import generations as gens
from tests.serving.gallery.conftest import DIM, holds_vector, unit

OLD, NEW = ModelBinding("test-model", 1), ModelBinding("test-model", 2)
MEDIA = b"RIFF" + bytes(range(256)) * 8  # distinctive bytes standing for a stored clip


def _layout(root: Path, rng) -> tuple[dict, dict]:
    """A modality root as an activation leaves it: the legacy folder (previous, OLD) and gen-0002
    (active, NEW), each holding ``victim`` and ``keep`` with stored media; returns their vectors."""
    old, new = {}, {}
    for path, binding, vectors in ((root, OLD, old), (root / "gen-0002", NEW, new)):
        with Gallery.open(
            path, modality="speaker", dim=DIM, model=binding, config=GalleryConfig(background=False)
        ) as g:
            for name in ("victim", "keep"):
                vectors[name] = unit(rng, 1)[0]
                g.enroll(name, vectors[name], model=binding, media=[Media(MEDIA + name.encode(), "wav")])
    active = gens.Generation("gen-0002", NEW.name, NEW.version, DIM)
    gens.write_state(root, gens.State(active, gens.Generation(gens.LEGACY, OLD.name, OLD.version, DIM)))
    return old, new


def _holding(root: Path, old: dict, new: dict, name: str) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if MEDIA + name.encode() in data or any(holds_vector(data, v[name][:16]) for v in (old, new)):
            found.append(str(path.relative_to(root)))
    return found


@pytest.mark.parametrize("previous_loaded", [True, False])
def test_delete_removes_the_identity_from_the_previous_generation(tmp_path, rng, previous_loaded):
    root = tmp_path / "speaker"
    old, new = _layout(root, rng)
    assert "store.sqlite3" in _holding(root, old, new, "victim")  # the legacy (previous) store has it
    config = GalleryConfig(background=False)
    active = Gallery.open(root / "gen-0002", modality="speaker", dim=DIM, model=NEW, config=config)
    kept = Gallery.open(root, modality="speaker", dim=DIM, model=None, config=config) if previous_loaded else None
    try:
        if kept is not None:
            kept.retire("a rollback target: writes refused")
        active.delete("victim", actor="test")
        assert _holding(root, old, new, "victim") == []
        assert "store.sqlite3" in _holding(root, old, new, "keep")  # the scan finds what is still there
        with pytest.raises(NotFound):
            active.delete("victim")
        if kept is not None:
            assert [i.identity for i in kept.list()[0]] == ["keep"] and kept.verify_consistency().ok
    finally:
        active.close()
        if kept is not None:
            kept.close()
    with Gallery.open(root, modality="speaker", dim=DIM, model=None, config=config) as reopened:
        assert [i.identity for i in reopened.list()[0]] == ["keep"] and reopened.verify_consistency().ok
        assert reopened.audit_log("victim")[0]["action"] == "delete"


def test_an_identity_only_the_previous_generation_has_is_deleted_there(tmp_path, rng):
    root = tmp_path / "speaker"
    old, new = _layout(root, rng)
    config = GalleryConfig(background=False)
    with Gallery.open(root / "gen-0002", modality="speaker", dim=DIM, model=NEW, config=config) as active:
        active.delete("victim")  # now only the previous generation has it
        with Gallery.open(root, modality="speaker", dim=DIM, model=None, config=config) as kept:
            kept.enroll("dropped", unit(rng, 1)[0], model=OLD)  # as if the activation had dropped it
        active.delete("dropped")
        with pytest.raises(NotFound):
            active.delete("dropped")
    with Gallery.open(root, modality="speaker", dim=DIM, model=None, config=config) as reopened:
        assert [i.identity for i in reopened.list()[0]] == ["keep"]
