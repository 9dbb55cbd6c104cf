"""Flat against HNSW as the corpus grows, on synthetic vectors shaped like real embeddings.

    .venv/bin/python benchmarks/scale.py [--sizes 20000,100000] [--queries 200]

Real vectors first: the Cranfield index kb eval builds (index/eval/cranfield, 1,864 passage
vectors of all-MiniLM-L6-v2; run `kb eval ../shared/data/cranfield` once). Each synthetic
vector is a random mixture a*x_i + (1-a)*x_j of two real ones (a uniform in [0.5, 1]) plus
Gaussian noise (sigma 0.03 per dimension), normalized: clustered like real embeddings, not
uniform noise (on which no approximate index is meaningful). Queries are drawn the same
way. For each size: build seconds, single-query p50 latency, recall@10 against exact
search, and index bytes against the raw vectors.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np

from kb.index import IndexStore, ann_spec, make_faiss_index
from kb.settings import Settings


def synthetic(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    i, j = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
    a = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    x = a * base[i] + (1 - a) * base[j] + rng.normal(0, 0.03, (n, base.shape[1])).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    settings = Settings.from_env()
    base = np.asarray(IndexStore(settings.index_dir / "eval" / "cranfield").load().vectors, dtype=np.float32)
    rng = np.random.default_rng(0)
    print(f"base: {len(base)} real vectors; HNSW M={settings.hnsw_m}, efSearch={settings.hnsw_ef_search}")
    print("| passages | index | build s | p50 ms/query | recall@10 | index MB | raw vectors MB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = synthetic(base, size, rng)
        queries = synthetic(base, args.queries, rng)
        exact = None
        for spec in ({"type": "flat"}, ann_spec(size, "hnsw", 0, settings.hnsw_m, settings.hnsw_ef_search)):
            began = time.perf_counter()
            index = make_faiss_index(vectors, spec)
            built = time.perf_counter() - began
            latencies = []
            for query in queries:
                t = time.perf_counter()
                index.search(query[None], 10)
                latencies.append((time.perf_counter() - t) * 1000)
            _, ids = index.search(queries, 10)
            if exact is None:
                exact = ids
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, ids)]))
            size_mb = len(faiss.serialize_index(index)) / 2**20
            print(f"| {size:,} | {spec['type']} | {built:.1f} | {statistics.median(latencies):.2f} | {recall:.3f} "
                  f"| {size_mb:.0f} | {vectors.nbytes / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    main()
