"""The whole query path as the corpus grows: encode, dense, BM25 over all passages, fusion, highlights.

    .venv/bin/python benchmarks/query_scale.py [--sizes 100000,1000000] [--queries 100] [--work /tmp/kb-query-scale]

For each size, a FAISS store of that many passages is made (once; kept in --work and reused):
Cranfield's abstracts prepared by kb (chunked, embedded by the real model, sentence vectors and
all), then repeated under new ids until the size is reached. Each copy's passage and sentence
vectors are moved by Gaussian noise (sigma 0.03 per dimension) and normalized, so copies are
near neighbours, not duplicates, of the real vectors. Texts repeat as they are, so every query
word matches size/1,864 times as many passages as in Cranfield: keyword search does the work a
real corpus of that size would give it (more, if anything: no word is rarer than in Cranfield).

The store is then opened as `kb serve` opens it (KB_INDEX_TYPE=auto: HNSW above 20,000
passages) and asked --queries different Cranfield questions through Searcher.answer with the
real embedder (KB_ENCODER as set; auto: ONNX Runtime for queries), highlights on, hybrid mode,
k=5: the full query path, each stage timed by wrapping the function that does it (as in
benchmarks/query_profile.py). Reported: p50/p95 of the whole answer, each stage's mean, seconds
to open the store, its size on disk counting every file in its folder, and the process's resident
memory after the questions (run one size per process to see one store's alone).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from query_profile import spent, timed  # noqa: E402
from writes import make_store  # noqa: E402

from kb.embedding.embedder import embedder_for  # noqa: E402
from kb.embedding.prepare import prepare  # noqa: E402
from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.settings import Settings  # noqa: E402
from kb.stores.base import PreparedDocument  # noqa: E402

CRANFIELD = REPO / "benchmarks" / "data" / "cranfield"
NOISE = 0.03


def prepared_cranfield(work: Path, settings: Settings) -> list[PreparedDocument]:
    cached = work / "cranfield-prepared.pickle"  # this benchmark's own scratch file, written just below
    if cached.exists():
        return pickle.loads(cached.read_bytes())
    documents = [d for d in load_cranfield(CRANFIELD).documents if d.text.strip()]
    prepared = prepare(documents, embedder_for(settings), settings)
    cached.write_bytes(pickle.dumps(prepared))
    return prepared


def moved(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = vectors.astype(np.float32) + rng.normal(0, NOISE, vectors.shape).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def varied(size: int):
    """Each copy after the first gets its passage and sentence vectors moved (see the module's docstring)."""
    rng = np.random.default_rng(size)

    def passages_of(item: PreparedDocument, copy: int) -> list:
        if not copy:
            return item.passages
        return [dataclasses.replace(p, vector=moved(p.vector, rng),
                                    sentence_vectors=moved(p.sentence_vectors, rng).astype(np.float16))
                for p in item.passages]

    return passages_of


def resident_mb() -> float:
    """This process's resident memory now (VmRSS), MiB: run one size per process to see one store's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--work", default="/tmp/kb-query-scale")
    args = parser.parse_args()
    import kb.search.pipeline
    from kb.embedding.embedder import Embedder
    from kb.search.live import LiveSearcher
    from kb.stores.faiss.store import FaissSnapshot

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = Settings.from_env(index_dir=work / "prep", corpus_dir=work / "corpus")
    prepared = prepared_cranfield(work, base)
    questions = list(load_cranfield(CRANFIELD).queries.values())[: args.queries]
    for owner, name, stage in [
        (kb.search.pipeline.Searcher, "answer", "answer"), (Embedder, "encode_query", "encode"),
        (FaissSnapshot, "candidates", "candidates"), (kb.search.pipeline.Searcher, "_rank", "fusion"),
        (FaissSnapshot, "records", "records"), (kb.search.pipeline, "annotate", "highlights"),
    ]:
        timed(owner, name, stage)
    print("| passages | index | store on disk MiB | open s | answer p50 ms | p95 ms | encode | dense + BM25 "
          "| fusion + feedback | records | highlights | RSS MiB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in [int(s) for s in args.sizes.split(",")]:
        folder = work / f"store-{size}"
        settings = Settings.from_env(index_dir=folder, corpus_dir=work / "corpus")
        if not (folder / "current").exists():
            began = time.perf_counter()
            made = make_store(folder, size, prepared, varied(size))
            print(f"(made a store of {made:,} passages in {time.perf_counter() - began:.0f} s)", flush=True)
        began = time.perf_counter()
        searcher = LiveSearcher(embedder_for(settings), settings).current()
        opened = time.perf_counter() - began
        searcher.answer("warm up", 5)
        spent.clear()
        totals = []
        for question in questions:
            t = time.perf_counter()
            searcher.answer(f"{question} [{os.getpid()}.{size}]", 5)  # never asked before: no cache answers
            totals.append((time.perf_counter() - t) * 1000)
        n = len(questions)
        mean = {stage: seconds / n * 1000 for stage, seconds in spent.items()}
        index = searcher.store.memory.vectors.spec.get("type", "?") if hasattr(searcher.store, "memory") else "?"
        resident = resident_mb()
        print(f"| {size:,} | {index} | {folder_mb(searcher.store.folder):,.0f} | {opened:.1f} "
              f"| {statistics.median(totals):.1f} | {sorted(totals)[int(0.95 * (n - 1))]:.1f} | {mean['encode']:.1f} "
              f"| {mean['candidates']:.1f} | {mean['fusion']:.1f} | {mean['records']:.1f} | {mean['highlights']:.1f} "
              f"| {resident:,.0f} |", flush=True)
        searcher.store.close()


if __name__ == "__main__":
    main()
