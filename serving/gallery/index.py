"""The derived FAISS index over a gallery's templates (the only module that touches faiss).

Two kinds, chosen by gallery size (:func:`choose_kind`):

- ``flat``: exact. ``IndexIDMap2(IndexFlatIP)`` holds the vectors (ids are the store's identity
  row ids; vectors are L2-normalised float32, so inner product = cosine); the scan reads an fp16
  copy and certifies the top k with float32 re-scoring (see :class:`FlatIndex`).
- ``pq-rerank``: every vector is kept as float32 in a slot array and also encoded as a 4-bit
  product-quantisation code (``IndexPQFastScan``, 16 bytes a 256-d vector). A search scans *all*
  codes (SIMD fast-scan: order of a millisecond for 1M on one core), then re-scores the best ``rerank``
  candidates exactly, so the scores it returns are exact cosines. IVF was measured and rejected:
  on isotropic 256-d templates with noisy probes (cosine 0.6 to the source) IVF-Flat reaches only
  0.67 recall@1 at nprobe=128 of 4096 lists, because a noisy probe often lands in other cells;
  an exhaustive compressed scan has no cells to miss (``bench/ann_alternatives.py`` reruns the
  comparison). ``rerank`` is tuned at build time on noisy
  copies of the gallery's own templates until recall@1 against exact search reaches the target.
  Deleting or replacing an identity leaves a dead slot (FAISS fast-scan removal is O(n));
  dead slots are skipped at search time and dropped by a background compaction.

An index is mutated only under the gallery's exclusive lock and searched under its shared lock;
the classes themselves do no locking.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import faiss
import numpy as np

from serving.gallery.types import GalleryConfig

FLAT, PQ_RERANK = "flat", "pq-rerank"
MIN_PQ_SIZE = 1000  # below this a product quantizer cannot be trained sensibly; flat is fast anyway
FP16_BOUND = 1e-3  # |fp16 score - exact score| for unit vectors: 2^-11 relative rounding, plus float32 sums
TUNE_COSINE = 0.6  # probes for tuning: cosine to their source at the hard end of genuine-pair scores
_GROW = 1.5


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """OpenMP threads for FAISS calls made by *this* thread (the setting is per thread)."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class Index(Protocol):
    kind: str

    @property
    def size(self) -> int: ...
    def contains(self, row_id: int) -> bool: ...
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(self, probe: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]: ...
    def ids_and_vectors(self) -> tuple[np.ndarray, np.ndarray]: ...
    def state(self) -> tuple[dict[str, float], dict[str, np.ndarray]]: ...
    def params(self) -> dict[str, float]: ...


class FlatIndex:
    """Exact inner-product search: float32 vectors in ``IndexIDMap2(IndexFlatIP)``, scanned via an fp16 copy.

    One query over 100k 256-d vectors is memory-bound: IndexFlatIP reads 100 MB (a few ms on one
    core; ``bench/bench_identify.py`` times it), and a second thread does not help. So the scan runs over an fp16 copy
    (``IndexScalarQuantizer(QT_fp16)``, half the bytes) and its best candidates are re-scored
    with the float32 vectors. For unit vectors an fp16 score is within ``FP16_BOUND`` of the exact
    one, so once the k-th exact score beats the lowest fetched fp16 score by that margin no
    vector outside the candidates can belong in the top k: the result is exactly IndexFlatIP's.
    """

    kind = FLAT

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._exact = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._scan = faiss.IndexIDMap2(
            faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        )
        self._ids: set[int] = set()

    @property
    def size(self) -> int:
        return int(self._exact.ntotal)

    def contains(self, row_id: int) -> bool:
        return int(row_id) in self._ids

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.remove(ids)
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self._exact.add_with_ids(vectors, ids)
            self._scan.add_with_ids(vectors, ids)
            self._ids.update(ids.tolist())

    def remove(self, ids: np.ndarray) -> None:
        present = np.asarray([i for i in np.asarray(ids, dtype=np.int64).tolist() if i in self._ids], dtype=np.int64)
        if len(present):
            # O(n) compaction (tens of ms at 100k); fine up to flat_max.
            self._exact.remove_ids(faiss.IDSelectorBatch(present))
            self._scan.remove_ids(faiss.IDSelectorBatch(present))
            self._ids.difference_update(present.tolist())

    def search(self, probe: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.size
        k = min(k, n)
        fetch = min(n, k + 32)
        with omp_threads(threads):
            while True:
                approx, ids = self._scan.search(probe.reshape(1, -1), fetch)
                ids = ids[0][ids[0] >= 0]
                scores = self._exact.reconstruct_batch(ids) @ probe
                order = np.argsort(-scores, kind="stable")[:k]
                if fetch >= n or scores[order[-1]] > approx[0][len(ids) - 1] + FP16_BOUND:
                    return ids[order], scores[order]
                fetch = min(n, fetch * 4)  # ties or near-ties around the k-th score: look further

    def ids_and_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        ids = faiss.vector_to_array(self._exact.id_map).astype(np.int64)
        base = faiss.downcast_index(self._exact.index)
        vectors = base.reconstruct_n(0, self.size) if self.size else np.zeros((0, self.dim), np.float32)
        return ids, vectors

    def state(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        ids, vectors = self.ids_and_vectors()
        return self.params(), {"ids": ids, "vectors": vectors}

    def params(self) -> dict[str, float]:
        return {}

    @classmethod
    def from_state(cls, dim: int, params: dict[str, float], sections: dict[str, np.ndarray]) -> FlatIndex:
        index = cls(dim)
        index.upsert(sections["ids"], sections["vectors"])
        return index


class PQRerankIndex:
    """Exhaustive 4-bit PQ fast-scan for candidates, exact float32 re-scoring of the best ``rerank``."""

    kind = PQ_RERANK

    def __init__(self, dim: int, codes: faiss.Index, rerank: int, params: dict[str, float]) -> None:
        self.dim = dim
        self.rerank = rerank
        self._codes = codes  # slot i of the code index = slot i of the arrays below
        self._params = dict(params)
        self._vectors = np.zeros((0, dim), np.float32)
        self._slot_ids = np.zeros(0, np.int64)  # -1 marks a dead slot
        self._slots = 0
        self._slot_of: dict[int, int] = {}

    @property
    def size(self) -> int:
        return len(self._slot_of)

    @property
    def dead(self) -> int:
        return self._slots - len(self._slot_of)

    def contains(self, row_id: int) -> bool:
        return int(row_id) in self._slot_of

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if not len(ids):
            return
        self.remove(ids)
        self._reserve(self._slots + len(ids))
        start, stop = self._slots, self._slots + len(ids)
        self._vectors[start:stop] = vectors
        self._slot_ids[start:stop] = ids
        self._codes.add(vectors)
        self._slots = stop
        self._slot_of.update(zip(ids.tolist(), range(start, stop)))

    def remove(self, ids: np.ndarray) -> None:
        for row_id in np.asarray(ids, dtype=np.int64).tolist():
            slot = self._slot_of.pop(row_id, None)
            if slot is not None:
                self._slot_ids[slot] = -1

    def _reserve(self, needed: int) -> None:
        if needed <= len(self._slot_ids):
            return
        capacity = max(needed, int(len(self._slot_ids) * _GROW), 1024)
        vectors = np.empty((capacity, self.dim), np.float32)
        vectors[: self._slots] = self._vectors[: self._slots]
        slot_ids = np.full(capacity, -1, np.int64)
        slot_ids[: self._slots] = self._slot_ids[: self._slots]
        # Swap whole arrays: a snapshot holding the old ones keeps a valid (immutable) prefix.
        self._vectors, self._slot_ids = vectors, slot_ids

    def search(self, probe: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        wanted = max(k, self.rerank)
        fetch = min(self._slots, wanted + min(self.dead, wanted))
        with omp_threads(threads):
            _, slots = self._codes.search(probe.reshape(1, -1), fetch)
        slots = slots[0][slots[0] >= 0]
        slots = slots[self._slot_ids[slots] >= 0][:wanted]
        scores = self._vectors[slots] @ probe
        order = np.argsort(-scores, kind="stable")[:k]
        return self._slot_ids[slots[order]], scores[order]

    def ids_and_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        live = np.flatnonzero(self._slot_ids[: self._slots] >= 0)
        return self._slot_ids[live].copy(), self._vectors[live]

    def state(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Slot ids are copied (deletes change them); the vector prefix is immutable, so it is shared."""
        codes = faiss.serialize_index(self._codes)
        return self.params(), {
            "ids": self._slot_ids[: self._slots].copy(),
            "vectors": self._vectors[: self._slots],
            "codes": codes,
        }

    def params(self) -> dict[str, float]:
        return {**self._params, "rerank": self.rerank, "dead": self.dead}

    @classmethod
    def from_state(cls, dim: int, params: dict[str, float], sections: dict[str, np.ndarray]) -> PQRerankIndex:
        codes = faiss.deserialize_index(np.ascontiguousarray(sections["codes"], dtype=np.uint8))
        slot_ids, vectors = sections["ids"], sections["vectors"]
        if codes.ntotal != len(slot_ids) or vectors.shape != (len(slot_ids), dim) or codes.d != dim:
            raise ValueError("pq-rerank snapshot sections disagree in size")
        index = cls(dim, codes, int(params["rerank"]), {k: v for k, v in params.items() if k not in ("rerank", "dead")})
        # Adopt the loaded arrays (no 1 GB copy at 1M); the first add after loading reallocates.
        index._vectors = vectors if vectors.flags.writeable else vectors.copy()
        index._slot_ids = slot_ids if slot_ids.flags.writeable else slot_ids.copy()
        index._slots = len(slot_ids)
        live = np.flatnonzero(slot_ids >= 0)
        index._slot_of = dict(zip(slot_ids[live].tolist(), live.tolist()))
        return index

    @classmethod
    def build(
        cls, dim: int, ids: np.ndarray, vectors: np.ndarray, config: GalleryConfig, seed: int = 0
    ) -> PQRerankIndex:
        """Train the quantizer on (a sample of) ``vectors``, encode them all, tune ``rerank``."""
        rng = np.random.default_rng(seed)
        m = _pq_codes(dim, config.pq_dims_per_code)
        codes = faiss.IndexPQFastScan(dim, m, 4, faiss.METRIC_INNER_PRODUCT)
        codes.pq.cp.min_points_per_centroid = 1  # small galleries: train anyway, without warnings
        sample = (
            vectors
            if len(vectors) <= config.pq_train_max
            else vectors[np.sort(rng.choice(len(vectors), config.pq_train_max, replace=False))]
        )
        with omp_threads(config.build_threads):
            codes.train(np.ascontiguousarray(sample, dtype=np.float32))
            params: dict[str, float] = {"pq_codes": m, "trained_on": len(sample), "built_size": len(ids)}
            index = cls(dim, codes, config.rerank_max, params)
            index.upsert(ids, vectors)
            index.rerank, recall = _tune(index, config, rng)
        index._params["tuned_recall"] = recall
        return index


def _pq_codes(dim: int, dims_per_code: int) -> int:
    """Number of 4-bit sub-quantizers: dim / dims_per_code, or the nearest smaller divisor of dim."""
    target = max(1, dim // dims_per_code)
    return next(m for m in range(target, 0, -1) if dim % m == 0)


def _tune(index: PQRerankIndex, config: GalleryConfig, rng: np.random.Generator) -> tuple[int, float]:
    """Twice the smallest candidate count (rerank_min, doubling) whose recall@1 vs exact search meets
    the target, and the recall measured at that smallest count.

    Probes are noisy copies of random gallery templates at cosine ``TUNE_COSINE`` to their source,
    the way real identification probes relate to an enrolled template. The factor of two is
    margin for a finite tuning sample; it costs little (re-scoring is cheap next to the scan).
    The gallery is rebuilt, and so re-tuned, each time it doubles (:func:`needs_rebuild`).
    """
    ids, vectors = index.ids_and_vectors()
    n = len(ids)
    probes = noisy_copies(vectors[rng.choice(n, min(config.tune_probes, n), replace=False)], TUNE_COSINE, rng)
    exact = exact_top1(vectors, probes)
    target_slots = np.flatnonzero(index._slot_ids[: index._slots] >= 0)[exact]
    fetch = min(config.rerank_max, index._slots)
    _, slots = index._codes.search(probes, fetch)
    found = slots == target_slots[:, None]
    rank = np.where(found.any(axis=1), found.argmax(axis=1), fetch)  # where exact top-1 sits among candidates
    rerank = config.rerank_min
    while True:
        recall = float((rank < rerank).mean())
        if recall >= config.target_recall or rerank >= config.rerank_max:
            return min(2 * rerank, config.rerank_max), recall
        rerank *= 2


def noisy_copies(sources: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at exactly ``cosine`` to each (unit) source row, in a random orthogonal direction."""
    noise = rng.standard_normal(sources.shape).astype(np.float32)
    noise -= (noise * sources).sum(axis=1, keepdims=True) * sources
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out = cosine * sources + np.sqrt(1.0 - cosine**2) * noise
    return np.ascontiguousarray(out / np.linalg.norm(out, axis=1, keepdims=True), dtype=np.float32)


def exact_top1(vectors: np.ndarray, probes: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Row of ``vectors`` with the highest inner product for each probe (brute force, chunked)."""
    best = np.full(len(probes), -np.inf, np.float32)
    arg = np.zeros(len(probes), np.int64)
    for start in range(0, len(vectors), chunk):
        scores = vectors[start : start + chunk] @ probes.T
        top = scores.argmax(axis=0)
        value = scores[top, np.arange(len(probes))]
        better = value > best
        best[better], arg[better] = value[better], top[better] + start
    return arg


def choose_kind(size: int, current: str | None, config: GalleryConfig) -> str:
    """Exact up to ``flat_max``; pq-rerank above it; back to exact below ``flat_max * flat_return``."""
    if size < MIN_PQ_SIZE:
        return FLAT
    if size > config.flat_max:
        return PQ_RERANK
    if current == PQ_RERANK and size > config.flat_max * config.flat_return:
        return PQ_RERANK
    return FLAT


def needs_rebuild(index: Index, config: GalleryConfig) -> str | None:
    """Why the index should be rebuilt now (kind change, too many dead slots, quantizer outgrown), or None."""
    wanted = choose_kind(index.size, index.kind, config)
    if wanted != index.kind:
        return f"size {index.size} calls for {wanted}"
    if isinstance(index, PQRerankIndex):
        if index.dead >= 64 and index.dead > config.compact_ratio * index._slots:
            return f"{index.dead} dead slots"
        built = int(index._params.get("built_size", 0))
        if index.size > 2 * built:  # more vectors compete for the candidates: re-train and re-tune
            return f"built for {built} vectors, now {index.size}"
    return None


def build(kind: str, dim: int, ids: np.ndarray, vectors: np.ndarray, config: GalleryConfig) -> Index:
    if kind == PQ_RERANK:
        return PQRerankIndex.build(dim, ids, vectors, config)
    index = FlatIndex(dim)
    with omp_threads(config.build_threads):
        index.upsert(ids, vectors)
    return index


def from_state(kind: str, dim: int, params: dict[str, float], sections: dict[str, np.ndarray]) -> Index:
    if kind == PQ_RERANK:
        return PQRerankIndex.from_state(dim, params, sections)
    if kind == FLAT:
        return FlatIndex.from_state(dim, params, sections)
    raise ValueError(f"unknown index kind {kind!r}")
