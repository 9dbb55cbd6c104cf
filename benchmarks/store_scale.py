"""Both stores side by side at 100,000 and 1,000,000 passages: query latency in every mode, keyword recall against
exact BM25, and each store's size on disk.

    .venv/bin/python benchmarks/store_scale.py [--sizes 100000,1000000] [--queries 40] [--work /tmp/kb-store-scale]

The stores are made once and kept in --work: Cranfield's abstracts prepared by kb (chunked, embedded by the
real model), repeated under new ids with moved vectors, as benchmarks/query_scale.py makes its stores. The
FAISS store is query_scale.py's; the PostgreSQL store (a local PostgreSQL 18 with pgvector, started in
--work/pg) gets the same passages through the store's own write path, 500 documents a write (each write a
postings segment, merged as they pile up), its HNSW index made once they are in (as a re-index makes a new
generation's), then VACUUM ANALYZE.

For each size, --queries distinct Cranfield questions (k=5, highlights on) go through ``Searcher.answer``,
the whole query path (candidates, fusion and feedback, records, highlights) without the encoder: each
question's vector is encoded once beforehand, so the stores are compared. In each mode the two stores
alternate question by question. Each store's very first question is reported apart (cold: the PostgreSQL
store starts with an empty postings cache, the FAISS store's memory is fresh from its checkpoint); then,
before each mode, --warmup other questions go to both stores untimed (PostgreSQL's buffers and the
postings cache warm, as on a server that has been answering).

Keyword recall@100: each store's keyword candidates (100 deep) against exact BM25 over every live passage
(every posting added up here, in NumPy, from the FAISS store's keyword index), tie-aware: the share of the
exact top 100 that the store's list reaches with scores at least the exact 100th.

Sizes on disk: every file in the FAISS store's folder; for PostgreSQL, pg_total_relation_size of every table
of the schema, the postings tables apart, and the GIN index on the tsvectors that they replace (made for the
measurement and dropped again).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from query_scale import folder_mb, prepared_cranfield, varied  # noqa: E402
from serving import free_port, percentile  # noqa: E402
from writes import copies, make_store  # noqa: E402

from kb.documents.terms import K1, B, terms  # noqa: E402
from kb.embedding.embedder import embedder_for  # noqa: E402
from kb.embedding.prepare import build_config  # noqa: E402
from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.search.pipeline import Searcher  # noqa: E402
from kb.settings import Settings  # noqa: E402
from kb.stores.base import PreparedDocument  # noqa: E402
from kb.stores.faiss.store import FaissStore, current_folder  # noqa: E402
from kb.stores.postgres.cluster import LocalCluster, wait_for  # noqa: E402
from kb.stores.postgres.schema import generation_vector_index  # noqa: E402
from kb.stores.postgres.store import PostgresStore  # noqa: E402

CRANFIELD = REPO / "benchmarks" / "data" / "cranfield"
MODES = ("hybrid", "dense", "keyword")
DEPTH = 100


def postgres_store(settings: Settings, size: int, prepared: list[PreparedDocument], dimension: int,
                   done: Path, batches=None) -> PostgresStore:
    """The store of ``size`` passages in its own schema: made by an earlier run (``done`` says it finished) or now,
    from ``batches`` (by default ``copies`` of the prepared documents with moved vectors)."""
    import psycopg

    if done.exists():
        return PostgresStore(settings)

    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {settings.pg_schema} CASCADE")
    began = time.perf_counter()
    store = PostgresStore.create(settings, settings.model, dimension, build_config(settings))
    s = store.schema
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:  # the HNSW index is made after the load
        for (name,) in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE "
                                    "'%%USING hnsw%%'", (s,)).fetchall():
            conn.execute(f'DROP INDEX {s}."{name}"')
    loaded = 0
    for batch in batches if batches is not None else copies(size, prepared, varied(size)):
        store.add(batch)
        loaded += sum(len(item.passages) for item in batch)
        if loaded % 50_000 < 650:
            print(f"  postgres: {loaded:,} passages in {time.perf_counter() - began:.0f} s", flush=True)
    if store._merging is not None:
        store._merging.join()
    print(f"  postgres: loaded and merged in {time.perf_counter() - began:.0f} s", flush=True)
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '6GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        conn.execute(generation_vector_index(s, store.generation, settings.hnsw_m))
        conn.execute("VACUUM ANALYZE")
    print(f"  postgres: HNSW index and VACUUM ANALYZE done at {time.perf_counter() - began:.0f} s", flush=True)
    done.touch()
    return store


def postgres_sizes(settings: Settings, generation: int) -> dict[str, float]:
    import psycopg

    s, g = settings.pg_schema, f"g{generation}_"
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (s,)).fetchall()
        conn.execute(f"CREATE INDEX bench_gin ON {s}.{g}passages USING gin (terms)")
        gin = conn.execute(f"SELECT pg_relation_size('{s}.bench_gin')").fetchone()[0]
        conn.execute(f"DROP INDEX {s}.bench_gin")
    total = sum(size for _, size in rows)
    postings = sum(size for name, size in rows if name in (f"{g}postings", f"{g}segments"))
    return {"total": total / 2**20, "postings": postings / 2**20, "gin": gin / 2**20}


def exact_top(index, query_terms: list[str], k: int) -> np.ndarray:
    """Exact BM25 scores of the best ``k`` live passages: every posting added up (independent of kb/stores/bm25.py)."""
    scores = np.zeros(index.size)
    average = index.total_length / index.live
    lengths, df = index.lengths.view(), index.df.view()
    for term in query_terms:
        term_id = index.vocab.get(term)
        if term_id is None or df[term_id] <= 0:
            continue
        slots, counts = index._slots[term_id].view(), index._counts[term_id].view().astype(np.float64)
        idf = np.log(1.0 + (index.live - df[term_id] + 0.5) / (df[term_id] + 0.5))
        scores[slots] += idf * counts / (counts + K1 * (1.0 - B + B * lengths[slots] / average))
    scores *= index.alive.view()
    return np.sort(scores[np.argpartition(-scores, k)[:k]])[::-1]


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    exact = exact[exact > 0]
    if not len(exact):
        return 1.0
    return min(int(np.sum(found >= exact[-1] * (1 - 1e-5))), len(exact)) / len(exact)


def ms(times: list[float]) -> str:
    return f"{statistics.median(times):.1f} / {percentile(times, 0.95):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=20, help="other questions first, untimed, on both stores")
    parser.add_argument("--work", default="/tmp/kb-store-scale")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # the PostgreSQL server runs as its own user when this runs as root
    base = Settings.from_env(index_dir=work / "prep", corpus_dir=work / "corpus")
    prepared = prepared_cranfield(work, base)
    embedder = embedder_for(base)
    asked = list(load_cranfield(CRANFIELD).queries.values())
    questions, warmup = asked[: args.queries], asked[args.queries: args.queries + args.warmup]
    vectors = {q: embedder.encode_query(q) for q in questions + warmup}  # from the embedder's cache from now on
    cluster = LocalCluster(work / "pg", free_port()).ensure_running()
    wait_for(cluster.dsn())
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            print(f"\n## {size:,} passages", flush=True)
            folder = work / f"faiss-{size}"
            if current_folder(folder) is None:
                began = time.perf_counter()
                make_store(folder, size, prepared, varied(size))
                print(f"  faiss: made in {time.perf_counter() - began:.0f} s", flush=True)
            faiss_settings = Settings.from_env(index_dir=folder, corpus_dir=work / "corpus")
            pg_settings = base.with_(store="postgres", pg_dsn=cluster.dsn(), pg_schema=f"scale_{size}")
            postgres = postgres_store(pg_settings, size, prepared, embedder.dimension, work / f"postgres-{size}.done")
            faiss = FaissStore.open(faiss_settings)
            stores = {"faiss": faiss, "postgres": postgres}
            searchers = {name: Searcher(store, embedder, faiss_settings if name == "faiss" else pg_settings)
                         for name, store in stores.items()}
            for store in stores.values():
                with store.snapshot() as snapshot:
                    print(f"  {type(store).__name__}: {snapshot.counts()[1]:,} passages", flush=True)
            times = {(name, mode): [] for name in stores for mode in MODES}
            cold = {}
            for name, searcher in searchers.items():  # each store's very first question (PostgreSQL: an empty cache)
                t = time.perf_counter()
                searcher.answer(warmup[0], 5, "keyword")
                cold[name] = (time.perf_counter() - t) * 1000
            for mode in MODES:
                for question in warmup:
                    for searcher in searchers.values():
                        searcher.answer(question, 5, mode)
                for question in questions:
                    for name, searcher in searchers.items():
                        t = time.perf_counter()
                        searcher.answer(question, 5, mode)
                        times[(name, mode)].append((time.perf_counter() - t) * 1000)
            recalls: dict[str, list[float]] = {name: [] for name in stores}
            for question in questions:
                exact = exact_top(faiss.memory.keyword, terms(question), DEPTH)
                for name, store in stores.items():
                    with store.snapshot() as snapshot:
                        found = snapshot.candidates(vectors[question], terms(question), DEPTH, False, True)
                    recalls[name].append(recall(found.keyword, exact))
            print("\n| mode | FAISS p50 / p95 ms | PostgreSQL p50 / p95 ms | PostgreSQL / FAISS p50 |")
            print("| --- | ---: | ---: | ---: |")
            for mode in MODES:
                f, p = times[("faiss", mode)], times[("postgres", mode)]
                print(f"| {mode} | {ms(f)} | {ms(p)} | {statistics.median(p) / statistics.median(f):.2f} |")
            print(f"\nthe first question (keyword, before the others): FAISS {cold['faiss']:.0f} ms, PostgreSQL "
                  f"{cold['postgres']:.0f} ms (an empty postings cache); PostgreSQL's postings cache afterwards: "
                  f"{postgres._postings.size / 2**20:.0f} MiB")
            print("keyword recall@100 against exact BM25: " + ", ".join(
                f"{name} {np.mean(values):.4f} (lowest {min(values):.4f})" for name, values in recalls.items()))
            sizes = postgres_sizes(pg_settings, postgres.generation)
            print(f"on disk: FAISS {folder_mb(current_folder(folder)):,.0f} MiB; PostgreSQL {sizes['total']:,.0f} MiB, "
                  f"of which postings {sizes['postings']:,.0f} MiB (a GIN index on the tsvectors instead: "
                  f"{sizes['gin']:,.0f} MiB)", flush=True)
            terms_per_query = Counter(len(set(terms(q))) for q in questions)
            print(f"(distinct query terms per question: median {statistics.median(sorted(terms_per_query.elements()))})")
            for store in stores.values():
                store.close()
    finally:
        cluster.stop("fast")


if __name__ == "__main__":
    main()
