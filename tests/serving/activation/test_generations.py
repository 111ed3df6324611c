"""The ACTIVE state file and crash recovery of gallery generations (no models needed)."""

from __future__ import annotations

import json

import pytest

from serving.errors import Unavailable
from serving.gallery import Gallery, GalleryConfig, ModelBinding
from serving.gallery import generations as gens
from serving.gallery.generations import Generation, State

V1 = Generation(gens.LEGACY, "m", 1, 8)


def _gallery(path, binding=ModelBinding("m", 1), dim=8) -> None:
    Gallery.open(path, modality="speaker", dim=dim, model=binding, config=GalleryConfig(background=False)).close()


def test_no_state_means_the_legacy_folder_and_recovery_drops_unnamed_generations(tmp_path):
    _gallery(tmp_path)
    gens.start_shadow(tmp_path, "gen-0002", {"model": "m"})  # an activation killed before its swap
    assert gens.read_state(tmp_path) is None
    assert gens.recover(tmp_path) is None
    assert gens.folders(tmp_path) == [] and (tmp_path / "store.sqlite3").is_file()


def test_state_round_trip_and_recovery_keeps_active_and_previous(tmp_path):
    _gallery(tmp_path)
    for name in ("gen-0002", "gen-0003", "gen-0004"):
        gens.start_shadow(tmp_path, name, {})
        _gallery(tmp_path / name, ModelBinding("m", 2))
    state = State(Generation("gen-0003", "m", 2, 8, sequence_at_switch=7, switched_at=1.5), V1)
    gens.write_state(tmp_path, state)
    assert json.loads((tmp_path / "ACTIVE").read_text())["active"]["folder"] == "gen-0003"
    assert gens.recover(tmp_path) == state
    assert gens.folders(tmp_path) == ["gen-0003"]  # 0002 and 0004 were never (or no longer) named
    assert gens.new_folder(tmp_path) == "gen-0004"
    assert not list(tmp_path.glob(".trash-*"))


def test_a_folder_open_in_this_process_is_not_discarded(tmp_path):
    gens.start_shadow(tmp_path, "gen-0002", {})
    gallery = Gallery.open(tmp_path / "gen-0002", modality="speaker", dim=8, model=ModelBinding("m", 2))
    try:
        gens.recover(tmp_path)
        assert gens.folders(tmp_path) == ["gen-0002"]
    finally:
        gallery.close()
    gens.recover(tmp_path)
    assert gens.folders(tmp_path) == []


def test_a_purged_previous_is_forgotten_and_a_missing_active_is_an_error(tmp_path):
    gens.start_shadow(tmp_path, "gen-0002", {})
    gens.write_state(tmp_path, State(Generation("gen-0002", "m", 2, 8), V1))  # the legacy store is gone
    state = gens.recover(tmp_path)
    assert state is not None and state.previous is None
    assert gens.read_state(tmp_path) == state
    gens.write_state(tmp_path, State(Generation("gen-0009", "m", 2, 8)))
    with pytest.raises(Unavailable, match="gen-0009"):
        gens.recover(tmp_path)


def test_discarding_the_legacy_generation_keeps_the_state_file(tmp_path):
    _gallery(tmp_path)
    gens.start_shadow(tmp_path, "gen-0002", {})
    gens.write_state(tmp_path, State(Generation("gen-0002", "m", 2, 8), V1))
    gens.discard(tmp_path, V1)
    assert not (tmp_path / "store.sqlite3").exists() and not (tmp_path / "index").exists()
    assert (tmp_path / "ACTIVE").is_file() and gens.folders(tmp_path) == ["gen-0002"]


def test_an_unreadable_state_file_is_unavailable(tmp_path):
    (tmp_path / "ACTIVE").write_text("{not json")
    with pytest.raises(Unavailable, match="unreadable"):
        gens.read_state(tmp_path)
