"""The two stores side by side in one run: Cranfield quality per mode, query latency, write latency.

    .venv/bin/python benchmarks/stores.py [--queries 200] [--writes 30]

The Cranfield abstracts are chunked and embedded once with the real model; the same prepared
passages go into a FAISS store (files in a temporary folder) and into a PostgreSQL store (a local
PostgreSQL 18 with pgvector started for the run, on a free loopback port). Then, for each store:
- nDCG@10, Recall@100 and MRR@10 of every mode on Cranfield's judged queries (`kb eval`'s scoring);
- the full query path in process (`Searcher.answer`: encode, dense and keyword candidates, fusion,
  feedback, highlights), hybrid, on distinct questions (a Cranfield query with a number, so no
  cache answers), p50 / p95;
- a one-passage document write (chunk, embed, one store transaction), p50 / p95, and a delete.
The two stores alternate question by question, so machine noise falls on both alike.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from serving import free_port, percentile  # noqa: E402

from kb.documents.document import Document
from kb.embedding.embedder import embedder_for  # noqa: E402
from kb.embedding.prepare import build_config, prepare  # noqa: E402
from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.evaluation.metrics import score_store  # noqa: E402
from kb.search.pipeline import Searcher  # noqa: E402
from kb.settings import Settings  # noqa: E402
from kb.stores.faiss.store import FaissStore  # noqa: E402
from kb.stores.postgres.cluster import LocalCluster, wait_for  # noqa: E402
from kb.stores.postgres.store import PostgresStore  # noqa: E402


def ms(times: list[float]) -> str:
    return f"{statistics.median(times):.1f} / {percentile(times, 0.95):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--writes", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kb-stores-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", free_port()).ensure_running()
    try:
        wait_for(cluster.dsn())
        collection = load_cranfield(REPO / "benchmarks" / "data" / "cranfield")
        base = Settings.from_env(index_dir=work / "index", corpus_dir=work / "corpus")
        embedder = embedder_for(base)
        began = time.perf_counter()
        prepared = prepare(collection.documents, embedder, base)
        passages = sum(len(p.passages) for p in prepared)
        print(f"embedded {passages} Cranfield passages in {time.perf_counter() - began:.0f} s", flush=True)
        stores = {}
        faiss = FaissStore.create(base.index_dir, base, base.model, embedder.dimension, build_config(base))
        faiss.make_current()
        pg_settings = base.with_(store="postgres", pg_dsn=cluster.dsn(), pg_schema="bench")
        postgres = PostgresStore.create(pg_settings, base.model, embedder.dimension, build_config(pg_settings))
        for name, store, settings in (("faiss", faiss, base), ("postgres", postgres, pg_settings)):
            began = time.perf_counter()
            for start in range(0, len(prepared), 200):
                store.add(prepared[start:start + 200])
            print(f"{name}: stored {passages} passages in {time.perf_counter() - began:.1f} s", flush=True)
            stores[name] = (store, settings)
        quality = {name: score_store(collection, store, embedder, settings)
                   for name, (store, settings) in stores.items()}
        searchers = {name: Searcher(store, embedder, settings) for name, (store, settings) in stores.items()}
        questions = list(collection.queries.values())
        latency: dict[str, list[float]] = {name: [] for name in stores}
        for n in range(args.queries):
            for name, searcher in searchers.items():
                q = f"{questions[n % len(questions)]} ({n})"
                embedder.encode_query(q)  # both stores get the query vector from the cache: the stores are compared
                t = time.perf_counter()
                searcher.answer(q, 10)
                latency[name].append((time.perf_counter() - t) * 1000)
        writes: dict[str, list[float]] = {name: [] for name in stores}
        deletes: dict[str, list[float]] = {name: [] for name in stores}
        for n in range(args.writes):
            for name, (store, settings) in stores.items():
                document = Document(f"w-{n}", f"Note {n}", "api/w", f"Note {n}: a wind tunnel test at Mach {n}.", {}, "")
                t = time.perf_counter()
                store.add(prepare([document], embedder, settings))
                writes[name].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                store.delete([document.id])
                deletes[name].append((time.perf_counter() - t) * 1000)
        print(f"\nCranfield ({next(iter(quality['faiss'].values()))['queries']} judged queries, {passages} passages), "
              "one run:\n")
        print("| mode | nDCG@10 FAISS | nDCG@10 PostgreSQL | difference | Recall@100 FAISS | Recall@100 PostgreSQL "
              "| MRR@10 FAISS | MRR@10 PostgreSQL |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode in quality["faiss"]:
            f, p = quality["faiss"][mode], quality["postgres"][mode]
            print(f"| {mode} | {f['nDCG@10']:.4f} | {p['nDCG@10']:.4f} | {p['nDCG@10'] - f['nDCG@10']:+.4f} "
                  f"| {f['Recall@100']:.4f} | {p['Recall@100']:.4f} | {f['MRR@10']:.4f} | {p['MRR@10']:.4f} |")
        print(f"\n| store | hybrid query, full path without the encoder, p50 / p95 ms ({args.queries} distinct) "
              f"| one-passage write (chunk, embed, store) p50 / p95 ms | delete p50 / p95 ms |")
        print("| --- | ---: | ---: | ---: |")
        for name in stores:
            print(f"| {name} | {ms(latency[name])} | {ms(writes[name])} | {ms(deletes[name])} |")
        for store, _ in stores.values():
            store.close()
    finally:
        cluster.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
