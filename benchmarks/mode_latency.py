"""Per-query cost of each retrieval mode, in-process, on the same queries in one run.

    .venv/bin/python benchmarks/mode_latency.py [--cranfield PATH] [--repeats 3]

Builds (or reuses) the Cranfield index under index/eval/cranfield, then times kb.open(...).search
for the 225 Cranfield queries with k=10 in each mode, without and with highlights, and prints
the median and p95 per query and the ratio of hybrid to dense. Modes are interleaved per query
so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import kb
from kb.evaluation.datasets import load_collection
from kb.ingestion.sync import build_index
from kb.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cranfield", default=str(REPO / "benchmarks" / "data" / "cranfield"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = Settings.from_env()
    collection = load_collection(Path(args.cranfield))
    own = settings.with_(index_dir=settings.index_dir / "eval" / collection.name)
    build_index(own, documents=collection.documents)
    base = kb.open(own)  # the front door, as the CLI and the web app use it
    queries = list(collection.queries.values())
    variants = [("dense", False), ("keyword", False), ("hybrid", False), ("hybrid", True)]
    times: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for query in queries:
            for mode, highlights in variants:
                began = time.perf_counter()
                base.search(query, 10, mode, highlights=highlights)
                times[(mode, highlights)].append((time.perf_counter() - began) * 1000)
    print(f"{base.counts()[1]} passages, {len(queries)} queries x {args.repeats}, k=10")
    print("| mode | highlights | p50 ms | p95 ms |")
    print("| --- | --- | ---: | ---: |")
    for (mode, highlights), values in times.items():
        values.sort()
        print(f"| {mode} | {'yes' if highlights else 'no'} | {statistics.median(values):.1f} | {values[int(0.95 * len(values))]:.1f} |")
    ratio = statistics.median(times[("hybrid", False)]) / statistics.median(times[("dense", False)])
    print(f"hybrid / dense (p50, no highlights): {ratio:.2f}")


if __name__ == "__main__":
    main()
