"""Speaker-training batches as a pure function of (seed, rank, step) (METHODS §1–2).

Each class is a map-style ``torch.utils.data.Dataset`` whose item ``step`` is the whole batch
of that step, built from a generator seeded by ``(seed, rank, step)`` and holding no iterator
state. So resuming at step k gives exactly the batches an uninterrupted run would have seen, DDP
ranks draw independent batches without coordination, and DataLoader workers build batches in
parallel with results identical to a single process::

    DataLoader(batches, batch_size=None, sampler=range(start_step, total_steps),
               num_workers=W, persistent_workers=W > 0)

Ranks sample independently: two ranks may pick the same utterance or speaker in one step.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import cached_property

import numpy as np
import torch

from training.data.audio_store import AudioStore
from training.data.augment import Augmenter
from training.data.manifest import ManifestRecord

PAIR_MODES = ("unsupervised", "supervised", "semi")
_LABELLED_SUBSET_STREAM = 0x1ABE1  # separates the labelled-subset draw from batch draws


class _StepBatches(torch.utils.data.Dataset):
    """Shared machinery: record → store index, speaker groups, per-step generators, crops."""

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        store: AudioStore,
        *,
        crop_seconds: float,
        augment: Augmenter,
        seed: int,
        rank: int,
        steps: int,
    ) -> None:
        if steps < 0 or rank < 0:
            raise ValueError(f"steps and rank must be non-negative, got {steps}, {rank}")
        self.records, self.store, self.augment = records, store, augment
        self.crop_seconds, self.seed, self.rank, self.steps = crop_seconds, seed, rank, steps

    def __len__(self) -> int:
        return self.steps

    def rng(self, step: int) -> np.random.Generator:
        """The generator that builds batch ``step`` (depends on seed, rank and step only)."""
        if not 0 <= step < self.steps:
            raise IndexError(f"step {step} outside [0, {self.steps})")
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.rank, step]))

    @cached_property
    def speakers(self) -> list[str]:
        """Sorted speaker identities of the records; ``speakers`` tensors index this list."""
        return sorted({r.identity for r in self.records if r.identity is not None})

    @cached_property
    def _store_index(self) -> np.ndarray:
        """Store position of each record (records may be any subset of the store's)."""
        if self.records is self.store.records:
            return np.arange(len(self.records))
        return np.array([self.store.index_of(r.path) for r in self.records], dtype=np.int64)

    @cached_property
    def _utterances_of(self) -> list[np.ndarray]:
        """Record positions of each speaker, in ``speakers`` order."""
        position = {s: k for k, s in enumerate(self.speakers)}
        groups: list[list[int]] = [[] for _ in self.speakers]
        for i, r in enumerate(self.records):
            if r.identity is not None:
                groups[position[r.identity]].append(i)
        return [np.array(g, dtype=np.int64) for g in groups]

    def _crops(self, utterances: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """One augmented crop per record position: float32 [len(utterances), T]."""
        n = self.store.crop_samples(self.crop_seconds)
        out = np.empty((len(utterances), n), dtype=np.float32)
        for row, i in enumerate(utterances.tolist()):
            out[row] = self.augment(self.store.crop(int(self._store_index[i]), self.crop_seconds, rng), rng)
        return torch.from_numpy(out)

    def _lengths(self, count: int) -> torch.Tensor:
        return torch.full((count,), self.store.crop_samples(self.crop_seconds), dtype=torch.long)


def _distinct(rng: np.random.Generator, population: int, k: int, what: str) -> np.ndarray:
    """``k`` distinct draws from range(population), or a ValueError naming ``what`` is short."""
    if k > population:
        raise ValueError(f"a batch needs {k} distinct {what} but only {population} exist")
    return rng.choice(population, size=k, replace=False)


def _two_utterances(utts: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """Two different utterances of a speaker, or its only one twice (two different crops)."""
    if utts.size == 1:
        return int(utts[0]), int(utts[0])
    a, b = rng.choice(utts.size, size=2, replace=False)
    return int(utts[a]), int(utts[b])


class PairBatches(_StepBatches):
    """Batches of N (anchor, positive) crop pairs for GCL / AP training (METHODS §1).

    mode "unsupervised": N distinct utterances; anchor and positive are two independent crops
        (each independently augmented) of the same utterance; every item is unlabelled.
    mode "supervised": N distinct speakers; anchor and positive come from two different
        utterances of the speaker (M-per-speaker sampling with M = 2; a speaker with a single
        utterance gives two crops of it).
    mode "semi": the first N//2 pairs are supervised-style from the labelled speakers
        (``labelled_speakers``), the other N − N//2 unsupervised-style from distinct utterances
        of every other speaker (and of records without an identity).

    ``__getitem__(step)`` returns anchor, positive: float32 [N, T] with
    T = round(crop_seconds · store.sample_rate); lengths: int64 [N] (all T); speakers: int64 [N],
    index into ``speakers`` for labelled items and −1 for unlabelled ones; labelled: bool [N];
    anchor_utterance, positive_utterance: int64 [N], positions in ``records``.
    Speakers are distinct among labelled pairs and utterances among unlabelled pairs, so GCL's
    keys (speaker for labelled, utterance for unlabelled) are distinct within a batch.
    """

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        store: AudioStore,
        *,
        pairs_per_batch: int = 200,
        crop_seconds: float = 2.0,
        mode: str = "unsupervised",
        labelled_fraction: float = 0.15,
        labelled_speakers: Collection[str] | None = None,
        augment: Augmenter,
        seed: int,
        rank: int = 0,
        steps: int,
    ) -> None:
        super().__init__(records, store, crop_seconds=crop_seconds, augment=augment, seed=seed, rank=rank, steps=steps)
        if mode not in PAIR_MODES:
            raise ValueError(f"mode must be one of {PAIR_MODES}, got {mode!r}")
        if pairs_per_batch < (2 if mode == "semi" else 1):
            raise ValueError(f"pairs_per_batch too small for mode {mode!r}: {pairs_per_batch}")
        if not 0.0 < labelled_fraction <= 1.0:
            raise ValueError(f"labelled_fraction must be in (0, 1], got {labelled_fraction}")
        if labelled_speakers is not None and mode != "semi":
            raise ValueError(f"labelled_speakers applies to mode 'semi' only, not {mode!r}")
        self.mode, self.pairs_per_batch = mode, pairs_per_batch
        self.labelled_fraction = labelled_fraction
        self._given_labelled = None if labelled_speakers is None else frozenset(labelled_speakers)

    @cached_property
    def labelled_speakers(self) -> tuple[str, ...]:
        """The speakers whose labels are used, sorted.

        supervised: all; unsupervised: none; semi: the given set, else
        round(labelled_fraction · #speakers) (at least 1) drawn from ``seed`` alone, so the
        subset is the same at every step and on every rank.
        """
        if self.mode == "supervised":
            return tuple(self.speakers)
        if self.mode == "unsupervised":
            return ()
        if self._given_labelled is not None:
            unknown = sorted(self._given_labelled - set(self.speakers))
            if unknown:
                raise ValueError(f"labelled_speakers not among the records: {unknown[:5]}")
            return tuple(sorted(self._given_labelled))
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _LABELLED_SUBSET_STREAM]))
        count = max(1, round(self.labelled_fraction * len(self.speakers)))
        chosen = rng.choice(len(self.speakers), size=min(count, len(self.speakers)), replace=False)
        return tuple(sorted(self.speakers[i] for i in chosen))

    @cached_property
    def _labelled_index(self) -> np.ndarray:
        """Positions in ``speakers`` of the labelled speakers."""
        position = {s: k for k, s in enumerate(self.speakers)}
        return np.array([position[s] for s in self.labelled_speakers], dtype=np.int64)

    @cached_property
    def _unlabelled_pool(self) -> np.ndarray:
        """Record positions available to unlabelled pairs (not of a labelled speaker)."""
        labelled = set(self.labelled_speakers)
        return np.array([i for i, r in enumerate(self.records) if r.identity not in labelled], dtype=np.int64)

    def _labelled_pairs(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(anchor utts, positive utts, speaker indices) of n pairs from distinct speakers."""
        picks = self._labelled_index[_distinct(rng, self._labelled_index.size, n, "labelled speakers")]
        pairs = [_two_utterances(self._utterances_of[k], rng) for k in picks.tolist()]
        anchor = np.array([a for a, _ in pairs], dtype=np.int64)
        positive = np.array([p for _, p in pairs], dtype=np.int64)
        return anchor, positive, picks

    def _unlabelled_pairs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Record positions of n distinct utterances for unlabelled (two-crop) pairs."""
        pool = self._unlabelled_pool
        return pool[_distinct(rng, pool.size, n, "unlabelled utterances")]

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = self.rng(step)
        n = self.pairs_per_batch
        n_lab = {"unsupervised": 0, "supervised": n, "semi": n // 2}[self.mode]
        anchor, positive, speakers = self._labelled_pairs(n_lab, rng)
        solo = self._unlabelled_pairs(n - n_lab, rng)
        anchor = np.concatenate([anchor, solo])
        positive = np.concatenate([positive, solo])
        speakers = np.concatenate([speakers, np.full(solo.size, -1, dtype=np.int64)])
        # Anchors then positives: each crop draws its own offset and augmentation.
        return {
            "anchor": self._crops(anchor, rng),
            "positive": self._crops(positive, rng),
            "lengths": self._lengths(n),
            "speakers": torch.from_numpy(speakers),
            "labelled": torch.from_numpy(speakers >= 0),
            "anchor_utterance": torch.from_numpy(anchor),
            "positive_utterance": torch.from_numpy(positive),
        }


def _support_query(
    utts: np.ndarray, support: int, query: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Utterances for a speaker's S support and Q query crops (METHODS §2).

    Enough utterances: S + Q distinct ones. Fewer (but at least two): the utterances are split
    into a query part (≈ Q/(S+Q) of them, at least one) and a support part, each reused with
    fresh crops as needed, so support and query never share an utterance. One utterance:
    every crop comes from it.
    """
    order = utts[rng.permutation(utts.size)]
    if order.size >= support + query:
        return order[:support], order[support : support + query]
    if order.size == 1:
        return np.repeat(order, support), np.repeat(order, query)
    n_query = min(order.size - 1, max(1, round(order.size * query / (support + query))))
    query_part, support_part = order[:n_query], order[n_query:]
    return (support_part[np.arange(support) % support_part.size], query_part[np.arange(query) % query_part.size])


class EpisodeBatches(_StepBatches):
    """Episodes of K speakers × (S support + Q query) crops for meta-training (METHODS §2).

    ``__getitem__(step)`` returns support: float32 [K·S, T], support_labels: int64 [K·S]
    (episode-local class 0..K−1, speaker-major: S crops of class 0, then of class 1, …),
    query: float32 [K·Q, T], query_labels: int64 [K·Q], support_lengths / query_lengths:
    int64 (all T), speakers: int64 [K], the episode's classes as indices into ``speakers``, and
    support_utterance / query_utterance: int64, the crops' positions in ``records``.
    """

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        store: AudioStore,
        *,
        speakers_per_episode: int = 100,
        support: int = 2,
        query: int = 1,
        crop_seconds: float = 2.0,
        augment: Augmenter,
        seed: int,
        rank: int = 0,
        steps: int,
    ) -> None:
        super().__init__(records, store, crop_seconds=crop_seconds, augment=augment, seed=seed, rank=rank, steps=steps)
        if speakers_per_episode < 1 or support < 1 or query < 1:
            raise ValueError("speakers_per_episode, support and query must all be >= 1")
        self.speakers_per_episode, self.support, self.query = speakers_per_episode, support, query

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = self.rng(step)
        k = self.speakers_per_episode
        chosen = _distinct(rng, len(self.speakers), k, "speakers")
        parts = [_support_query(self._utterances_of[s], self.support, self.query, rng) for s in chosen.tolist()]
        support = np.concatenate([s for s, _ in parts])
        query = np.concatenate([q for _, q in parts])
        return {
            "support": self._crops(support, rng),
            "support_labels": torch.arange(k).repeat_interleave(self.support),
            "query": self._crops(query, rng),
            "query_labels": torch.arange(k).repeat_interleave(self.query),
            "support_lengths": self._lengths(support.size),
            "query_lengths": self._lengths(query.size),
            "speakers": torch.from_numpy(chosen.astype(np.int64)),
            "support_utterance": torch.from_numpy(support),
            "query_utterance": torch.from_numpy(query),
        }
