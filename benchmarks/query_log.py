"""What the query log costs: search latency with it on and off, and its size.

    .venv/bin/python benchmarks/query_log.py [--clients 8] [--seconds 15] [--rounds 3] [--rows 1000000] [--pg]

Latency: Cranfield's 1,400 abstracts as text files, one `kb build`, and three `kb serve` over that index: one with
KB_QUERY_LOG=on (every API search is logged) and two with KB_QUERY_LOG=off (two servers that differ in nothing
show how far apart the same code measures: the noise). In each round, each server in turn (the order rotating)
gets --clients clients asking back to back for --seconds, every question new (numbered: no answer from the
cache), through GET /api/search. Printed: p50 / p95 of each over all rounds, each over the first "off", and the
rows the log holds afterwards (the searches it kept).

Size: --rows searches written to a fresh log, as the server writes them (batches, one transaction each), from
Cranfield's questions and documents (questions repeated with case and punctuation variants, three nearest
passages and five cited documents each, spread over 90 days); the SQLite file's size (FAISS), and with --pg the
tables' size on a local PostgreSQL 18 (kb/stores/postgres/querylog.py, created by migration 4); and the time of a
90-day report over all of them (as `kb insights --days 90` makes it: counted in SQL, then shaped in Python).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from serving import free_port, percentile, start_server, throughput  # noqa: E402
from writes import CRANFIELD  # noqa: E402

from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.insights.log import group_key  # noqa: E402
from kb.insights.report import LIMIT, report, window_start  # noqa: E402
from kb.stores.querylog import LoggedSearch, SqliteQueryLog  # noqa: E402

BATCH = 500  # rows a flush writes at a time in the size test (a busy server's half second)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(args: argparse.Namespace, work: Path, questions: list[str]) -> None:
    env = {"KB_CORPUS_DIR": str(work / "corpus"), "KB_INDEX_DIR": str(work / "index")}
    subprocess.run([sys.executable, "-m", "kb.cli", "build"], env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                   check=True, capture_output=True)
    servers = {}
    for name, mode in (("on", "on"), ("off", "off"), ("off, a second server", "off")):
        process, port, _ = start_server(8, {**env, "KB_QUERY_LOG": mode, "KB_READ_RATE_LIMIT": "off"})
        servers[name] = (process, port)
    try:
        times: dict[str, list[float]] = {name: [] for name in servers}
        cpu: dict[str, float] = {name: 0.0 for name in servers}  # the server's CPU seconds during its rounds
        for mode, (_, port) in servers.items():  # warm them
            throughput(port, questions, args.clients, 2, tag=f" warm {mode}")
        names = list(servers)
        for n in range(args.rounds):
            order = names[n % len(names):] + names[:n % len(names)]
            for mode in order:
                before = cpu_seconds(servers[mode][0].pid)
                done, errors, spent = throughput(servers[mode][1], questions, args.clients, args.seconds,
                                                 tag=f" {mode} {n}")
                cpu[mode] += cpu_seconds(servers[mode][0].pid) - before
                assert errors == 0, (mode, errors)
                times[mode] += spent
        kept = SqliteQueryLog(work / "corpus" / ".kb" / "queries.sqlite").counts()[0]
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=60)
    off = times["off"]
    print(f"\nSearch latency, {args.clients} clients back to back, {args.rounds} rounds of {args.seconds:.0f} s "
          f"each per server (Cranfield, 1,398 files); the second server with the log off shows the noise\n")
    print("| server, KB_QUERY_LOG | searches | p50 ms | p95 ms | p50 / off | p95 / off | server CPU ms a search |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, spent in times.items():
        print(f"| {name} | {len(spent):,} | {statistics.median(spent):.1f} | {percentile(spent, 0.95):.1f} | "
              f"{statistics.median(spent) / statistics.median(off):.3f} | "
              f"{percentile(spent, 0.95) / percentile(off, 0.95):.3f} | {cpu[name] / len(spent) * 1000:.2f} |")
    print(f"\nRows the log kept: {kept:,} (the warm-up's included)")


def rows(count: int, questions: list[str], doc_ids: list[str]):
    rng = random.Random(7)
    now = time.time()
    for n in range(count):
        question = rng.choice(questions)
        question = rng.choice([question, question.lower(), question.rstrip(" .?") + "?", question.upper()])
        cited = rng.sample(doc_ids, 5)
        yield LoggedSearch(rng.getrandbits(53), now - rng.random() * 90 * 86400, question[:500], group_key(question),
                           "page", "hybrid", rng.random() < 0.8,
                           [[doc_id, rng.randrange(0, 4000), rng.randrange(4000, 8000), round(rng.random(), 4)]
                            for doc_id in cited[:3]], cited)


def size(args: argparse.Namespace, work: Path, questions: list[str], doc_ids: list[str]) -> None:
    logs = {"SQLite (FAISS store)": SqliteQueryLog(work / "size" / "queries.sqlite")}
    cluster = None
    if args.pg:
        from kb.settings import Settings
        from kb.stores.postgres.cluster import LocalCluster, wait_for
        from kb.stores.postgres.querylog import PostgresQueryLog
        from kb.stores.postgres.schema import _v4

        work.chmod(0o755)
        cluster = LocalCluster(work / "pg", free_port()).ensure_running()
        wait_for(cluster.dsn())
        import psycopg

        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA kb")
            for statement in _v4("kb", {}):  # the query log's tables (not the documents' index: no documents here)
                if ".documents " not in statement:
                    conn.execute(statement)
        logs["PostgreSQL"] = PostgresQueryLog(Settings.from_env(environ={}, store="postgres", pg_dsn=cluster.dsn()))
    try:
        print(f"\nThe query log at {args.rows:,} searches\n")
        print("| where | write time s | size MiB | bytes a search | a 90-day report s |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, log in logs.items():
            began = time.perf_counter()
            batch = []
            for row in rows(args.rows, questions, doc_ids):
                batch.append(row)
                if len(batch) == BATCH:
                    log.append(batch, [])
                    batch = []
            log.append(batch, [])
            spent = time.perf_counter() - began
            assert log.counts()[0] >= args.rows * 0.999  # 53-bit ids: a rare collision is dropped
            if isinstance(log, SqliteQueryLog):
                log._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
                size_bytes = sum(p.stat().st_size for p in log.path.parent.glob("queries.sqlite*"))
            else:
                size_bytes = log._db.run(lambda conn: conn.execute(
                    "SELECT pg_total_relation_size('kb.queries') + pg_total_relation_size('kb.clicks')").fetchone()[0])
            began = time.perf_counter()  # what kb insights does: read the window's rows, group, count
            report(log.summary(window_start(90), LIMIT), [(d, d) for d in doc_ids], lambda *_: None, days=90)
            reported = time.perf_counter() - began
            print(f"| {name} | {spent:.0f} | {size_bytes / 2**20:,.0f} | {size_bytes / args.rows:,.0f} | "
                  f"{reported:.1f} |")
            log.close()
    finally:
        if cluster is not None:
            cluster.stop("fast")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000, help="searches in the size test (0: skip it)")
    parser.add_argument("--pg", action="store_true", help="also measure the log's size on PostgreSQL")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kb-query-log-"))
    collection = load_cranfield(CRANFIELD)
    (work / "corpus").mkdir()
    for document in collection.documents:
        if document.text.strip():
            (work / "corpus" / f"{document.id}.txt").write_text(f"{document.title}\n\n{document.text}\n")
    questions = list(collection.queries.values())
    try:
        if not args.skip_latency:
            latency(args, work, questions)
        if args.rows:
            size(args, work, questions, [f"{d.id}.txt" for d in collection.documents])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
