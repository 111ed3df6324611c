"""The served face model (dlib's ResNet) as the blind-distillation teacher (METHODS §8)."""

from __future__ import annotations

import numpy as np

from contracts.face_geometry import dlib_alignment
from export.xmodal_teacher import dlib_face_embedder
from training.data.face_render import face_sources
from training.data.face_tracks import render_track
from training.methods.teacher_sampling import track_embedding


def test_dlib_teacher_tracks_of_one_person_are_closer_than_two_people() -> None:
    photos = [i for i, (name, _) in enumerate(face_sources()) if not name.startswith("lfw")]
    assert len(photos) == 2  # the astronaut and Grace Hopper: two real, distinct people
    embed = dlib_face_embedder()
    tracks = {
        (who, t): track_embedding(embed(render_track(who, t, 3, dlib_alignment(150), seed=1).chips))
        for who in photos
        for t in (0, 1)
    }
    assert all(e.shape == (128,) for e in tracks.values())
    a, b = photos
    same = [float(tracks[(p, 0)] @ tracks[(p, 1)]) for p in photos]
    other = [float(tracks[(a, s)] @ tracks[(b, t)]) for s in (0, 1) for t in (0, 1)]
    assert min(same) > max(other)
    small = render_track(a, 0, 2, dlib_alignment(112), seed=1).chips  # resized to dlib's 150 px
    assert embed(small).shape == (2, 128) and np.isfinite(embed(small)).all()
