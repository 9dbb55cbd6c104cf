"""Search latency when the caller may read 100%, 10% or 1% of the passages, on both stores, in the same run.

    .venv/bin/python benchmarks/access.py [--size 100000] [--queries 40] [--work /tmp/kb-access]

Each store holds --size passages: Cranfield's abstracts prepared by kb (chunked, embedded by the real model),
repeated under new ids with moved vectors (as benchmarks/store_scale.py makes its stores), every document given one
of 100 groups, g0 to g99, in turn. A caller of group g0 reads 1% of the passages, of g0 to g9 10%, of all 100 groups
100% (a caller with groups, so the access filter runs, and hides nothing), and the admin key reads everything with no
filter at all (the reference). The stores are made once and kept in --work.

For each mode, --queries Cranfield questions (k=5, highlights on) go through ``Searcher.answer``, the whole query
path without the encoder (each question encoded once beforehand), the callers taking turns question by question
(each caller first in turn), one store after the other, after --warmup other questions untimed. The PostgreSQL store keeps, per
version of the store, which passages a caller's groups pass; "postgres, after a write" forgets that before every
question, as the first question after a write finds it. Every answer must hold k results (the filter runs before
ranking); the fewest any answer held is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from query_scale import prepared_cranfield, varied  # noqa: E402
from serving import free_port, percentile  # noqa: E402
from store_scale import CRANFIELD, MODES, postgres_store  # noqa: E402
from writes import copies, make_store  # noqa: E402

from kb.embedding.embedder import embedder_for  # noqa: E402
from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.search.pipeline import Searcher  # noqa: E402
from kb.settings import Settings  # noqa: E402
from kb.stores.faiss.store import FaissStore, current_folder  # noqa: E402
from kb.stores.filters import Filters  # noqa: E402
from kb.stores.postgres.cluster import LocalCluster, wait_for  # noqa: E402

GROUPS = 100
CALLERS = {"admin (no filter)": None, "100% (all 100 groups)": tuple(f"g{n}" for n in range(GROUPS)),
           "10% (10 groups)": tuple(f"g{n}" for n in range(10)), "1% (1 group)": ("g0",)}


def with_access(size: int, prepared):
    """``copies`` of the prepared documents, each given one of the GROUPS in turn."""
    number = 0
    for batch in copies(size, prepared, varied(size)):
        out = []
        for item in batch:
            out.append(dataclasses.replace(item, document=dataclasses.replace(item.document,
                                                                              access=(f"g{number % GROUPS}",))))
            number += 1
        yield out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--work", default="/tmp/kb-access")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # the PostgreSQL server runs as its own user when this runs as root
    cached = Path("/tmp/kb-store-scale/cranfield-prepared.pickle")  # store_scale.py's, when it has run
    if cached.exists() and not (work / cached.name).exists():
        shutil.copy(cached, work / cached.name)
    base = Settings.from_env(index_dir=work / "prep", corpus_dir=work / "corpus")
    prepared = prepared_cranfield(work, base)
    embedder = embedder_for(base)
    asked = list(load_cranfield(CRANFIELD).queries.values())
    questions, warmup = asked[: args.queries], asked[args.queries: args.queries + args.warmup]
    for question in questions + warmup:
        embedder.encode_query(question)  # from the embedder's cache from now on
    cluster = LocalCluster(work / "pg", free_port()).ensure_running()
    wait_for(cluster.dsn())
    try:
        folder = work / f"faiss-{args.size}"
        if current_folder(folder) is None:
            began = time.perf_counter()
            make_store(folder, args.size, prepared, batches=with_access(args.size, prepared))
            print(f"  faiss: made in {time.perf_counter() - began:.0f} s", flush=True)
        faiss = FaissStore.open(Settings.from_env(index_dir=folder, corpus_dir=folder / "corpus"))
        pg_settings = base.with_(store="postgres", pg_dsn=cluster.dsn(), pg_schema=f"access_{args.size}")
        postgres = postgres_store(pg_settings, args.size, prepared, embedder.dimension,
                                  work / f"postgres-{args.size}.done", batches=with_access(args.size, prepared))
        searchers = {"faiss": Searcher(faiss, embedder, faiss.settings), "postgres": Searcher(postgres, embedder, pg_settings)}
        for name, store in (("faiss", faiss), ("postgres", postgres)):
            print(f"  {name}: {store.counts()[1]:,} passages; visible to "
                  + ", ".join(f"{label}: {store.counts(groups)[1]:,}" for label, groups in CALLERS.items()), flush=True)
        def forget() -> None:  # as after a write: the next question reads who may read what from the documents again
            postgres._remembered.clear()

        runs = {"faiss": (searchers["faiss"], lambda: None), "postgres": (searchers["postgres"], lambda: None),
                "postgres, after a write": (searchers["postgres"], forget)}
        times = {(name, mode, label): [] for name in runs for mode in MODES for label in CALLERS}
        fewest = {name: 5 for name in runs}
        callers = list(CALLERS.items())
        for mode in MODES:
            for question in warmup:
                for searcher in searchers.values():
                    for groups in CALLERS.values():
                        searcher.answer(question, 5, mode, filters=Filters(groups=groups))
            for name, (searcher, before) in runs.items():
                for number, question in enumerate(questions):
                    for label, groups in callers[number % 4:] + callers[: number % 4]:  # each caller first in turn
                        searcher._answers.clear()  # every answer computed, none from the cache
                        before()
                        began = time.perf_counter()
                        answer = searcher.answer(question, 5, mode, filters=Filters(groups=groups))
                        times[(name, mode, label)].append((time.perf_counter() - began) * 1000)
                        fewest[name] = min(fewest[name], len(answer.hits))
        print(f"\n{args.size:,} passages, {args.queries} questions, k=5, p50 / p95 ms (1% / 100% p50 in brackets)\n")
        print("| store | mode | " + " | ".join(CALLERS) + " |")
        print("| --- | --- |" + " ---: |" * len(CALLERS))
        for name in runs:
            for mode in MODES:
                cells = []
                for label in CALLERS:
                    values = times[(name, mode, label)]
                    cells.append(f"{statistics.median(values):.1f} / {percentile(values, 0.95):.1f}")
                ratio = statistics.median(times[(name, mode, "1% (1 group)")]) / statistics.median(
                    times[(name, mode, "100% (all 100 groups)")])
                print(f"| {name} | {mode} | " + " | ".join(cells) + f" | ({ratio:.2f}x)")
        print("\nfewest results in any answer (k=5): " + ", ".join(f"{n} {v}" for n, v in fewest.items()))
        faiss.close()
        postgres.close()
    finally:
        cluster.stop("fast")


if __name__ == "__main__":
    main()
