"""Pair and episode batches: pure functions of (seed, rank, step), with the batch invariants
that GCL (METHODS §1) and episodic training (METHODS §2) rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from training.data.audio_store import AudioStore
from training.data.augment import Augmenter
from training.data.manifest import ManifestRecord, read_manifest
from training.data.speaker_batches import EpisodeBatches, PairBatches, _support_query
from training.data.speech_corpus import build_speech_corpus

CROP = 0.25  # seconds: keeps the tests fast; crop length is not what they are about
T = 4000


@pytest.fixture(scope="module")
def noise_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[ManifestRecord]:
    """40 speakers; speaker k has 1 + k % 4 utterances of unique noise, 0.1–0.6 s long, so
    that crops both fit and loop, and every crop can be traced back to its utterance."""
    folder = tmp_path_factory.mktemp("noise_corpus")
    rng = np.random.default_rng(0)
    records = []
    for k in range(40):
        for j in range(1 + k % 4):
            x = (0.1 * rng.standard_normal(int(rng.uniform(0.1, 0.6) * 16000))).astype("f4")
            path = folder / f"s{k:02d}_{j}.wav"
            sf.write(path, x, 16000, subtype="FLOAT")
            records.append(ManifestRecord(path=path, identity=f"s{k:02d}", duration=x.size / 16000, split="train"))
    return records


@pytest.fixture(scope="module")
def speech_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[ManifestRecord]:
    """The espeak-ng tiny corpus: 6 speakers × 3 utterances (5 train speakers)."""
    out = tmp_path_factory.mktemp("speech_corpus")
    return read_manifest(
        build_speech_corpus(out, n_speakers=6, utterances_per_speaker=3, seed=0, progress=False, workers=2)
    )


def _pairs(records, mode="unsupervised", n=8, augment=None, seed=0, rank=0, **kw):
    return PairBatches(
        records,
        AudioStore(records),
        pairs_per_batch=n,
        crop_seconds=CROP,
        mode=mode,
        augment=augment or Augmenter.none(),
        seed=seed,
        rank=rank,
        steps=100,
        **kw,
    )


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _is_crop_of(crop: torch.Tensor, x: np.ndarray) -> bool:
    """Whether ``crop`` is a window of ``x`` looped end to start."""
    looped = np.tile(x, 2 + crop.numel() // x.size)
    c = crop.numpy()
    starts = np.flatnonzero(looped[: x.size] == c[0])
    return any(np.array_equal(looped[s : s + c.size], c) for s in starts)


def test_batches_are_a_pure_function_of_seed_rank_and_step(noise_corpus) -> None:
    batches = _pairs(noise_corpus, augment=Augmenter())
    first = batches[5]
    assert _same(first, batches[5])
    assert _same(first, _pairs(noise_corpus, augment=Augmenter())[5])  # fresh instance
    assert not torch.equal(first["anchor"], batches[6]["anchor"])
    for other in (_pairs(noise_corpus, augment=Augmenter(), rank=1), _pairs(noise_corpus, augment=Augmenter(), seed=1)):
        assert not torch.equal(first["anchor"], other[5]["anchor"])
    assert len(batches) == 100
    with pytest.raises(IndexError):
        batches[100]


def test_unsupervised_pairs_are_two_crops_of_distinct_utterances(noise_corpus) -> None:
    batches = _pairs(noise_corpus, n=12)
    store = batches.store
    for step in range(3):
        b = batches[step]
        assert b["anchor"].shape == b["positive"].shape == (12, T)
        assert b["anchor"].dtype == torch.float32
        assert torch.equal(b["lengths"], torch.full((12,), T))
        assert torch.equal(b["anchor_utterance"], b["positive_utterance"])
        assert len(set(b["anchor_utterance"].tolist())) == 12
        assert torch.all(b["speakers"] == -1) and not b["labelled"].any()
        for i, u in enumerate(b["anchor_utterance"].tolist()):
            assert not torch.equal(b["anchor"][i], b["positive"][i])
            assert _is_crop_of(b["anchor"][i], store.load(u))
            assert _is_crop_of(b["positive"][i], store.load(u))


def test_supervised_pairs_are_two_utterances_of_distinct_speakers(noise_corpus) -> None:
    batches = _pairs(noise_corpus, mode="supervised", n=16)
    assert batches.labelled_speakers == tuple(batches.speakers)
    for step in range(3):
        b = batches[step]
        speakers = b["speakers"].tolist()
        assert len(set(speakers)) == 16 and b["labelled"].all()
        for i, k in enumerate(speakers):
            a, p = b["anchor_utterance"][i].item(), b["positive_utterance"][i].item()
            name = batches.speakers[k]
            assert noise_corpus[a].identity == noise_corpus[p].identity == name
            n_utts = sum(r.identity == name for r in noise_corpus)
            assert (a != p) == (n_utts > 1)  # one utterance only: two crops of it
            assert _is_crop_of(b["anchor"][i], batches.store.load(a))
            assert _is_crop_of(b["positive"][i], batches.store.load(p))


def test_semi_batches_mix_labelled_speakers_and_unlabelled_utterances(noise_corpus) -> None:
    batches = _pairs(noise_corpus, mode="semi", n=10)
    labelled = batches.labelled_speakers
    assert len(labelled) == 6  # 15 % of 40 speakers
    # The subset depends on the seed alone: same at every step and rank, new with a new seed.
    assert _pairs(noise_corpus, mode="semi", n=10, rank=3).labelled_speakers == labelled
    assert _pairs(noise_corpus, mode="semi", n=10, seed=1).labelled_speakers != labelled
    for step in range(5):
        b = batches[step]
        assert b["labelled"].tolist() == [True] * 5 + [False] * 5
        lab_speakers = [batches.speakers[k] for k in b["speakers"][:5].tolist()]
        assert len(set(lab_speakers)) == 5 and set(lab_speakers) <= set(labelled)
        assert torch.all(b["speakers"][5:] == -1)
        solo = b["anchor_utterance"][5:].tolist()
        assert len(set(solo)) == 5 and solo == b["positive_utterance"][5:].tolist()
        assert not {noise_corpus[u].identity for u in solo} & set(labelled)


def test_labelled_subset_is_fifteen_percent_and_can_be_given(tmp_path: Path) -> None:
    fake = [
        ManifestRecord(tmp_path / f"{k}-{j}.wav", f"spk{k:03d}", 3.0, "train") for k in range(200) for j in range(2)
    ]
    semi = PairBatches(fake, AudioStore(fake), mode="semi", augment=Augmenter.none(), seed=4, steps=1)
    assert len(semi.labelled_speakers) == 30  # no audio is read to choose them
    given = PairBatches(
        fake,
        AudioStore(fake),
        mode="semi",
        augment=Augmenter.none(),
        seed=4,
        steps=1,
        labelled_speakers={"spk001", "spk000"},
    )
    assert given.labelled_speakers == ("spk000", "spk001")
    unknown = PairBatches(
        fake, AudioStore(fake), mode="semi", augment=Augmenter.none(), seed=4, steps=1, labelled_speakers={"nobody"}
    )
    with pytest.raises(ValueError, match="nobody"):
        unknown.labelled_speakers
    with pytest.raises(ValueError, match="mode"):
        PairBatches(fake, AudioStore(fake), mode="weak", augment=Augmenter.none(), seed=0, steps=1)
    with pytest.raises(ValueError, match="'semi' only"):
        PairBatches(
            fake,
            AudioStore(fake),
            mode="supervised",
            augment=Augmenter.none(),
            seed=0,
            steps=1,
            labelled_speakers={"spk000"},
        )


def test_too_few_speakers_or_utterances_is_an_error(noise_corpus) -> None:
    with pytest.raises(ValueError, match="41 distinct labelled speakers"):
        _pairs(noise_corpus, mode="supervised", n=41)[0]
    with pytest.raises(ValueError, match="distinct unlabelled utterances"):
        _pairs(noise_corpus, n=len(noise_corpus) + 1)[0]


def test_records_may_be_a_subset_of_the_store(noise_corpus) -> None:
    subset = noise_corpus[10:]
    batches = PairBatches(
        subset,
        AudioStore(noise_corpus),
        pairs_per_batch=4,
        crop_seconds=CROP,
        augment=Augmenter.none(),
        seed=0,
        steps=1,
    )
    b = batches[0]
    for i, u in enumerate(b["anchor_utterance"].tolist()):
        assert _is_crop_of(b["anchor"][i], AudioStore(subset).load(u))


def test_support_and_query_use_different_utterances_when_they_can() -> None:
    rng = np.random.default_rng(0)
    for n_utts in range(1, 7):
        utts = np.arange(100, 100 + n_utts)
        for s, q in ((2, 1), (3, 2)):
            sup, qry = _support_query(utts, s, q, rng)
            assert sup.size == s and qry.size == q
            assert set(sup) | set(qry) <= set(utts)
            if n_utts >= 2:
                assert not set(sup) & set(qry)
            if n_utts >= s + q:
                assert len(set(sup) | set(qry)) == s + q


def test_episodes_have_k_speakers_with_support_and_query(noise_corpus) -> None:
    episodes = EpisodeBatches(
        noise_corpus,
        AudioStore(noise_corpus),
        speakers_per_episode=7,
        support=2,
        query=3,
        crop_seconds=CROP,
        augment=Augmenter(),
        seed=0,
        steps=10,
    )
    e = episodes[2]
    assert e["support"].shape == (14, T) and e["query"].shape == (21, T)
    assert e["support_labels"].tolist() == [c for c in range(7) for _ in range(2)]
    assert e["query_labels"].tolist() == [c for c in range(7) for _ in range(3)]
    assert torch.equal(e["support_lengths"], torch.full((14,), T))
    assert torch.equal(e["query_lengths"], torch.full((21,), T))
    assert len(set(e["speakers"].tolist())) == 7
    for part in ("support", "query"):
        for label, u in zip(e[f"{part}_labels"].tolist(), e[f"{part}_utterance"].tolist()):
            assert noise_corpus[u].identity == episodes.speakers[e["speakers"][label]]
    assert _same(e, episodes[2]) and not torch.equal(e["query"], episodes[3]["query"])
    with pytest.raises(ValueError, match="distinct speakers"):
        EpisodeBatches(
            noise_corpus, AudioStore(noise_corpus), speakers_per_episode=41, augment=Augmenter.none(), seed=0, steps=1
        )[0]


def test_dataloader_workers_give_the_single_process_batches(speech_corpus) -> None:
    train = [r for r in speech_corpus if r.split == "train"]
    store = AudioStore(speech_corpus)  # a store over every record, batches over the train ones
    pairs = PairBatches(
        train,
        store,
        pairs_per_batch=4,
        crop_seconds=1.0,
        mode="semi",
        labelled_speakers=set(sorted({r.identity for r in train})[:2]),
        augment=Augmenter(),
        seed=3,
        steps=6,
    )
    episodes = EpisodeBatches(
        train, store, speakers_per_episode=3, support=2, query=1, crop_seconds=1.0, augment=Augmenter(), seed=3, steps=6
    )
    for dataset in (pairs, episodes):
        serial = list(DataLoader(dataset, batch_size=None, sampler=range(2, 6), num_workers=0))
        parallel = list(DataLoader(dataset, batch_size=None, sampler=range(2, 6), num_workers=2))
        assert len(serial) == len(parallel) == 4
        assert all(_same(a, b) for a, b in zip(serial, parallel))
        assert all(_same(a, dataset[step]) for a, step in zip(serial, range(2, 6)))
    assert pairs[0]["anchor"].shape == (4, 16000)
    assert {train[u].split for u in pairs[0]["anchor_utterance"].tolist()} == {"train"}
