"""The FAISS vector index over numbered slots: grows in place, deletes by marking.

Slot n is FAISS's own sequential id n, so no id map is needed. A deleted slot stays in the
index, hidden from every search by an IDSelectorBitmap of the live slots, until the owner
rebuilds the index (see kb/stores/faiss/memory.py). Which index a size gets (flat, HNSW, IVF-PQ) is
decided by ``ann_spec``; the query-time knobs (HNSW efSearch, IVF nprobe) are passed with each
search, so changing them rebuilds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from kb.stores.faiss.growable import Growable

IVFPQ_MIN_PASSAGES = 10_000  # fewer than this cannot train product quantizers well: flat instead
RERANK_DEPTH = 100  # a quantized index proposes at least this many passages; exact vectors order them


def ann_spec(passages: int, index_type: str, threshold: int, m: int) -> dict[str, Any]:
    """Which FAISS index a store of this size gets: how it is built, not how it is searched."""
    if index_type == "ivfpq":
        if passages < IVFPQ_MIN_PASSAGES:
            return {"type": "flat"}
        # About 4 * sqrt(n) lists, a power of two, each list with at least 39 training points.
        lists = 1 << max(4, int(np.log2(4 * np.sqrt(passages))))
        return {"type": "ivfpq", "nlist": min(lists, passages // 39), "rerank": RERANK_DEPTH}
    if index_type == "hnsw" or (index_type == "auto" and passages > threshold):
        # efConstruction 200: at 1M passages 80 capped recall@10 at 0.92 whatever efSearch (benchmarks/scale.py)
        return {"type": "hnsw", "M": m, "efConstruction": 200}
    return {"type": "flat"}


def _pq_subvectors(dimension: int) -> int:
    """Sub-vectors of 8 dimensions or more: 48 bytes a vector for 384 dimensions."""
    for m in range(dimension // 8, 0, -1):
        if dimension % m == 0:
            return m
    return 1


def make_faiss_index(dimension: int, spec: dict[str, Any], training: np.ndarray | None = None) -> Any:
    if spec["type"] == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, int(spec["M"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(spec["efConstruction"])
        return index
    if spec["type"] == "ivfpq":
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFPQ(quantizer, dimension, int(spec["nlist"]), _pq_subvectors(dimension), 8,
                                 faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        sample = training[np.random.default_rng(0).permutation(len(training))[: 64 * int(spec["nlist"])]]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return index
    return faiss.IndexFlatIP(dimension)


class VectorIndex:
    """Inner-product search over slots; exact scores always (a quantized index only proposes)."""

    def __init__(self, dimension: int, spec: dict[str, Any] | None = None, training: np.ndarray | None = None,
                 faiss_index: Any = None) -> None:
        self.dimension = dimension
        self.spec = spec or {"type": "flat"}
        self.index = faiss_index if faiss_index is not None else make_faiss_index(dimension, self.spec, training)
        self.alive = Growable(np.bool_, np.ones(self.index.ntotal, dtype=np.bool_))
        self.deleted = 0
        # IVF-PQ keeps no exact copy of a vector; kb keeps one for re-ranking. Flat and HNSW reconstruct theirs.
        self._exact = Growable(np.float32) if self.spec["type"] == "ivfpq" else None
        self._bitmap: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        if not len(vectors):
            return
        self.index.add(vectors)
        self.alive.append(np.ones(len(vectors), dtype=np.bool_))
        if self._exact is not None:
            self._exact.append(vectors.reshape(-1))
        self._bitmap = None

    def remove(self, slot: int) -> None:
        if self.alive.view()[slot]:
            self.alive.view()[slot] = False
            self.deleted += 1
            self._bitmap = None

    def vectors(self, slots: np.ndarray) -> np.ndarray:
        """The exact stored vectors of these slots."""
        slots = np.asarray(slots, dtype=np.int64)
        if self._exact is not None:
            return self._exact.view().reshape(-1, self.dimension)[slots]
        if not len(slots):
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.index.reconstruct_batch(slots)

    def search(self, query: np.ndarray, k: int, ef_search: int = 128, nprobe: int = 32,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(slot, inner product) of the k nearest live slots (only ``allowed`` ones when given), best first."""
        live = self.size - self.deleted
        if allowed is not None:
            live = min(live, len(allowed))
        k = min(k, live)
        if k <= 0:
            return []
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        rerank = int(self.spec.get("rerank", 0))
        depth = min(live, max(4 * k, rerank)) if rerank else k
        _, ids = self.index.search(query, depth, params=self._params(ef_search, nprobe, allowed))
        ids = ids[0][ids[0] >= 0]
        exact = self.vectors(ids) @ query[0]
        best = np.argsort(-exact, kind="stable")[:k]
        return [(int(ids[i]), float(exact[i])) for i in best]

    def _params(self, ef_search: int, nprobe: int, allowed: np.ndarray | None) -> Any:
        kind = self.spec["type"]
        params = (faiss.SearchParametersHNSW() if kind == "hnsw" else
                  faiss.SearchParametersIVF() if kind == "ivfpq" else faiss.SearchParameters())
        if kind == "hnsw":
            params.efSearch = ef_search
        elif kind == "ivfpq":
            params.nprobe = nprobe
        if allowed is not None:
            mask = np.zeros(self.size, dtype=np.bool_)
            mask[np.asarray(allowed, dtype=np.int64)] = True
            mask &= self.alive.view()
            bitmap = np.packbits(mask, bitorder="little")
        elif self.deleted:
            if self._bitmap is None:
                self._bitmap = np.packbits(self.alive.view(), bitorder="little")
            bitmap = self._bitmap
        else:
            return params
        params.sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        params._keep = bitmap  # the selector points into it: keep it alive as long as the parameters
        return params

    def save(self, path: Path) -> None:
        try:
            faiss.write_index(self.index, str(path))
        except RuntimeError as exc:  # FAISS reports a failed write (a full disk, say) as a RuntimeError
            raise OSError(0, f"FAISS could not write the file ({str(exc).strip().splitlines()[-1][:120]})",
                          str(path)) from None
