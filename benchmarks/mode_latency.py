"""Per-query cost of each retrieval mode, in-process, on the same queries in one run.

    .venv/bin/python benchmarks/mode_latency.py [--cranfield PATH] [--repeats 3]

Builds (or reuses) the Cranfield index under index/eval/cranfield, then times Searcher.answer
for the 225 Cranfield queries with k=10 in each mode, without and with highlights, and prints
the median and p95 per query and the ratio of hybrid to dense. Modes are interleaved per query
so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from kb.build import build_index
from kb.datasets import load_collection
from kb.embed import embedder_for
from kb.faiss_store import open_current
from kb.search import Searcher
from kb.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cranfield", default=str(REPO / "benchmarks" / "data" / "cranfield"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = Settings.from_env()
    embedder = embedder_for(settings)
    collection = load_collection(Path(args.cranfield))
    folder = settings.index_dir / "eval" / collection.name
    build_index(settings.with_(index_dir=folder), embedder=embedder, documents=collection.documents)
    store = open_current(settings.with_(index_dir=folder))
    searcher = Searcher(store, embedder, settings)
    queries = list(collection.queries.values())
    variants = [("dense", False), ("keyword", False), ("hybrid", False), ("hybrid", True)]
    times: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for query in queries:
            for mode, highlights in variants:
                began = time.perf_counter()
                searcher.answer(query, 10, mode, highlights=highlights)
                times[(mode, highlights)].append((time.perf_counter() - began) * 1000)
    print(f"{store.snapshot().counts()[1]} passages, {len(queries)} queries x {args.repeats}, k=10")
    print("| mode | highlights | p50 ms | p95 ms |")
    print("| --- | --- | ---: | ---: |")
    for (mode, highlights), values in times.items():
        values.sort()
        print(f"| {mode} | {'yes' if highlights else 'no'} | {statistics.median(values):.1f} | {values[int(0.95 * len(values))]:.1f} |")
    ratio = statistics.median(times[("hybrid", False)]) / statistics.median(times[("dense", False)])
    print(f"hybrid / dense (p50, no highlights): {ratio:.2f}")


if __name__ == "__main__":
    main()
