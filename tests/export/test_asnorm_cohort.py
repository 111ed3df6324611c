"""The AS-norm cohort: disjoint from the calibration speakers, written with its card section, and a
card with (or, an old version, without) the section loads."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np

from contracts.card import CARD_FILE, SpeakerCard, load_card, write_card
from contracts.schema import SCHEMA_PATH
from export.speaker_dev import DEV_SPEAKERS, build_cohort, cohort_corpus
from training.data.synthetic_speech import DEV_SPEAKER_OFFSET, enumerate_speakers


def test_cohort_speakers_are_never_dev_speakers(tmp_path: Path):
    files = cohort_corpus(tmp_path, speakers=3, utterances=1)
    cohort_ids = {f.parent.name for f in files}
    dev = enumerate_speakers(DEV_SPEAKERS, 2024, start=DEV_SPEAKER_OFFSET)
    assert len(files) == 3 and len(cohort_ids) == 3
    assert cohort_ids.isdisjoint({s.id for s in dev})
    # Not only other names: other voices (language, variant, pitch) than every dev speaker.
    index = {s.id: s for s in enumerate_speakers(3000, 2024)}
    voices = {(index[i].language, index[i].variant, index[i].pitch) for i in cohort_ids}
    assert voices.isdisjoint({(s.language, s.variant, s.pitch) for s in dev})


def test_build_cohort_writes_unit_rows_and_describes_them(tmp_path: Path):
    files = [Path(f"/x/spk{k}/u.wav") for k in range(4)]

    def embed(paths):
        rows = np.array([[k + 1.0, 2.0, 0.0] for k in range(len(paths))])
        rows[2] = np.nan  # a clip the pipeline refused
        return rows

    cohort = build_cohort(embed, files, tmp_path, top_n=50)
    saved = np.load(tmp_path / cohort.file)
    assert saved.shape == (3, 3) and saved.dtype == np.float32
    assert np.allclose(saved[0], np.array([1.0, 2.0, 0.0]) / np.sqrt(5.0))
    assert cohort.sha256 == hashlib.sha256((tmp_path / "cohort.npy").read_bytes()).hexdigest()
    assert (cohort.embeddings, cohort.dim, cohort.top_n, cohort.speakers) == (3, 3, 3, 4)


def test_card_with_the_section_round_trips_and_an_old_card_loads(models_dir: Path, tmp_path: Path):
    old = tmp_path / "old"
    shutil.copytree(models_dir / "resemblyzer-ge2e" / "1", old, ignore=shutil.ignore_patterns("*.onnx", "*.npy"))
    raw = json.loads((old / CARD_FILE).read_text())
    raw.pop("cohort", None), raw.pop("calibration_as_norm", None)  # a version exported before AS-norm
    (old / CARD_FILE).write_text(json.dumps(raw))
    card = load_card(old)
    assert isinstance(card, SpeakerCard) and card.cohort is None and card.calibration_as_norm is None
    dim = card.embedding.dim
    card.cohort = build_cohort(lambda ps: np.eye(len(ps), dim), [Path(f"/c/s{k}/a.wav") for k in range(5)], old, 2)
    assert card.calibration is not None
    card.calibration_as_norm = card.calibration.model_copy(update={"score": "as-norm", "det_plot": "det-asnorm.png"})
    write_card(old, card)
    again = load_card(old)
    assert again == card and again.cohort is not None and again.cohort.top_n == 2
    jsonschema.validate(json.loads((old / CARD_FILE).read_text()), json.loads(SCHEMA_PATH.read_text()))
