"""`make bench`: every benchmark in one run, each printing its figures.

    .venv/bin/python benchmarks/run_all.py

Retrieval quality (kb eval on the seed question set and on Cranfield), per-mode latency, encoder
engines, serving figures (cold start, HTTP latency against a bare encode + FAISS floor, cache,
throughput, memory), where a query's time goes, the load test on the Cranfield index and on a
100,000-passage store (8 clients), the full query path at 100,000 passages, FAISS alone at scale
(flat, HNSW and IVF-PQ), build speed, and
writes (latency at 1,000 to 100,000 passages, searches during writes, quality after API loading).
Uses KB_INDEX_DIR (default index/); builds the seed index first if it is out of date.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CRANFIELD = REPO / "benchmarks" / "data" / "cranfield"


def run(*args: str) -> None:
    print(f"\n$ {' '.join(args)}", flush=True)
    subprocess.run(args, check=True, cwd=REPO)


def main() -> None:
    kb = [sys.executable, "-m", "kb.cli"]
    run(*kb, "build")
    run(*kb, "eval", "benchmarks/data/seed_questions.jsonl")
    if CRANFIELD.exists():
        run(*kb, "eval", str(CRANFIELD))
        run(sys.executable, "benchmarks/mode_latency.py", "--cranfield", str(CRANFIELD))
        run(sys.executable, "benchmarks/encoders.py")
        run(sys.executable, "benchmarks/serving.py", "--compare")
        run(sys.executable, "benchmarks/query_profile.py")
        index = Path(os.environ.get("KB_INDEX_DIR", REPO / "index"))
        run(sys.executable, "benchmarks/load.py", "--index", str(index / "eval" / "cranfield"), "--clients", "8")
        run(sys.executable, "benchmarks/query_scale.py", "--sizes", "100000")
        run(sys.executable, "benchmarks/load.py", "--index", "/tmp/kb-query-scale/store-100000", "--clients", "8")
        run(sys.executable, "benchmarks/scale.py")
        run(sys.executable, "benchmarks/build_speed.py")
        run(sys.executable, "benchmarks/writes.py", "--quality")
    else:
        print(f"\n(skipped Cranfield: {CRANFIELD} not found)")


if __name__ == "__main__":
    main()
