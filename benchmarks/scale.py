"""Flat against HNSW as the corpus grows, on synthetic vectors shaped like real embeddings.

    .venv/bin/python benchmarks/scale.py [--sizes 20000,100000] [--queries 200]

Real vectors first: the Cranfield index kb eval builds (index/eval/cranfield, 1,864 passage
vectors of all-MiniLM-L6-v2; run `kb eval benchmarks/data/cranfield` once). Each synthetic
vector is a random mixture a*x_i + (1-a)*x_j of two real ones (a uniform in [0.5, 1]) plus
Gaussian noise (sigma 0.03 per dimension), normalized: clustered like real embeddings, not
uniform noise (on which no approximate index is meaningful). Queries are drawn the same
way. For each size and index (flat; HNSW at several efSearch; IVF-PQ re-ranked with the
exact vectors, memory-mapped from a .npy as kb serves them): build seconds, single-query
p50 latency through kb's Index.search, recall@10 against exact search, index bytes against
the raw vectors, and seconds to load the written index (memory-mapped where FAISS allows).

    .venv/bin/python benchmarks/scale.py --sizes 100000,1000000 --ef 64,128,256
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import faiss
import numpy as np

from kb.settings import Settings
from kb.stores.faiss.store import open_current
from kb.stores.faiss.vectors import RERANK_DEPTH, VectorIndex, ann_spec


def synthetic(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    i, j = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
    a = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    x = a * base[i] + (1 - a) * base[j] + rng.normal(0, 0.03, (n, base.shape[1])).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="64", help="HNSW efSearch values to measure on the same graph")
    parser.add_argument("--work", default="/tmp/kb-scale", help="folder for the written index files")
    parser.add_argument("--ef-construction", type=int, default=None, help="HNSW efConstruction (default: kb's)")
    parser.add_argument("--nprobe", default=None, help="IVF-PQ nprobe values to measure (default KB_IVF_NPROBE)")
    args = parser.parse_args()
    settings = Settings.from_env()
    memory = open_current(settings.with_(index_dir=settings.index_dir / "eval" / "cranfield")).memory
    base = np.asarray(memory.vectors.vectors(np.arange(memory.size)), dtype=np.float32)
    rng = np.random.default_rng(0)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"base: {len(base)} real vectors; HNSW M={settings.hnsw_m}; IVF-PQ nprobe={settings.ivf_nprobe}, "
          f"re-ranked from the top {RERANK_DEPTH}")
    print("| passages | index | build s | load s | p50 ms/query | recall@10 | index MB | raw vectors MB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = synthetic(base, size, rng)
        queries = synthetic(base, args.queries, rng)
        exact = None
        specs = [{"type": "flat"}, ann_spec(size, "hnsw", 0, settings.hnsw_m), ann_spec(size, "ivfpq", 0, settings.hnsw_m)]
        if args.ef_construction:
            specs[1]["efConstruction"] = args.ef_construction
        for spec in specs:
            began = time.perf_counter()
            index = VectorIndex(vectors.shape[1], spec, training=vectors)
            index.add(vectors)
            build_s = time.perf_counter() - began
            faiss_path = work / "vectors.faiss"
            index.save(faiss_path)
            began = time.perf_counter()
            if spec["type"] != "ivfpq":  # IVF-PQ keeps kb's exact copy beside it, which a file read does not restore
                index = VectorIndex(vectors.shape[1], spec, faiss_index=faiss.read_index(str(faiss_path)))
            load_s = time.perf_counter() - began
            size_mb = faiss_path.stat().st_size / 2**20
            if spec["type"] == "hnsw":
                knobs = [("efSearch", int(e)) for e in args.ef.split(",")]
            elif spec["type"] == "ivfpq":
                knobs = [("nprobe", int(n)) for n in (args.nprobe or str(settings.ivf_nprobe)).split(",")]
            else:
                knobs = [(None, None)]
            for knob, value in knobs:
                label = spec["type"] + (f" M={spec['M']} efC={spec['efConstruction']}" if "M" in spec else "") \
                    + (f" nlist={spec['nlist']}" if "nlist" in spec else "") + (f" {knob}={value}" if knob else "")
                knobs_now = {"ef_search": value} if knob == "efSearch" else {"nprobe": value} if knob == "nprobe" else {}
                index.search(queries[0], 10, **knobs_now)  # warm up
                latencies, found = [], []
                for query in queries:
                    t = time.perf_counter()
                    hits = index.search(query, 10, **knobs_now)
                    latencies.append((time.perf_counter() - t) * 1000)
                    found.append([i for i, _ in hits])
                if exact is None:
                    exact = found
                recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found)]))
                print(f"| {size:,} | {label} | {build_s:.1f} | {load_s:.3f} | {statistics.median(latencies):.2f} "
                      f"| {recall:.3f} | {size_mb:.0f} | {vectors.nbytes / 2**20:.0f} |", flush=True)
            del index


if __name__ == "__main__":
    main()
