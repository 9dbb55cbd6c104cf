"""A `kb serve` on PostgreSQL and one on FAISS over the same corpus, asked the same questions over HTTP.

    .venv/bin/python benchmarks/stores_http.py [--corpus DIR] [--questions 200] [--work DIR]

The corpus: Cranfield's 1,400 abstracts written as text files (the default), or the files of --corpus (then
each question is made from a file's first line, "what is <it> about", for --questions files picked at
random with a fixed seed). Both indexes are made by `kb build` (the PostgreSQL one on a local PostgreSQL 18
with pgvector started in --work), both servers run with the same settings. For each mode, each question
(distinct, never asked before) goes to one server and then the other, alternating which goes first, one
request at a time; reported: p50 / p95 of the full HTTP request, the ratio of the p50s, and how often both
servers give the same first document.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from serving import free_port, percentile  # noqa: E402
from writes import CRANFIELD, KEY, start  # noqa: E402

from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.stores.postgres.cluster import LocalCluster, wait_for  # noqa: E402

MODES = ("hybrid", "keyword", "dense")


def ask(conn, question: str, mode: str) -> tuple[float, str | None]:
    began = time.perf_counter()
    conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": question, "mode": mode, "k": 5}))
    response = conn.getresponse()
    body = response.read()
    spent = (time.perf_counter() - began) * 1000
    assert response.status == 200, (response.status, body[:200])
    results = json.loads(body)["results"]
    return spent, results[0]["doc_id"] if results else None


def main() -> None:
    import http.client

    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=None, help="a folder of documents (default: Cranfield's abstracts)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="kb-stores-http-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # the PostgreSQL server runs as its own user when this runs as root
    corpus = work / "corpus"
    if args.corpus:
        if not corpus.exists():
            shutil.copytree(args.corpus, corpus)
        files = sorted(p for p in corpus.rglob("*") if p.is_file())
        random.Random(7).shuffle(files)
        firsts = [next((line.strip() for line in p.read_text(errors="replace").splitlines() if line.strip()), "")
                  for p in files[: args.questions]]
        questions = [f"what is {first} about" for first in firsts if first]
        described = f"the {len(files):,} files of {args.corpus}"
    else:
        collection = load_cranfield(CRANFIELD)
        if not corpus.exists():
            corpus.mkdir()
            for document in collection.documents:
                if document.text.strip():
                    (corpus / f"{document.id}.txt").write_text(f"{document.title}\n\n{document.text}\n")
        questions = list(collection.queries.values())[: args.questions]
        described = "Cranfield's abstracts as text files"
    cluster = LocalCluster(work / "pg", free_port()).ensure_running()
    wait_for(cluster.dsn())
    settings = {"faiss": {"KB_INDEX_DIR": str(work / "index")},
                "postgres": {"KB_INDEX_DIR": str(work / "pg-index"), "KB_STORE": "postgres", "KB_PG_DSN": cluster.dsn()}}
    envs = {name: {**os.environ, "HF_HUB_OFFLINE": "1", "KB_CORPUS_DIR": str(corpus), "KB_API_KEY": KEY, **extra}
            for name, extra in settings.items()}
    servers = []
    try:
        for name, env in envs.items():
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "kb.cli", "build"], env=env, check=True, capture_output=True)
            print(f"{name}: kb build in {time.perf_counter() - began:.0f} s", flush=True)
        ports = {}
        for name, extra in settings.items():  # (start() adds KB_API_KEY and the rest)
            process, ports[name] = start(Path(extra["KB_INDEX_DIR"]), {**extra, "KB_CORPUS_DIR": str(corpus)})
            servers.append(process)
        conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=120) for name, port in ports.items()}
        conns["faiss"].request("GET", "/api/health")
        health = json.loads(conns["faiss"].getresponse().read())
        for name, conn in conns.items():
            ask(conn, "warm up", "hybrid")
        rows = []
        for mode in MODES:
            times: dict[str, list[float]] = {name: [] for name in conns}
            same = 0
            for n, question in enumerate(questions):
                q = f"{question} [{mode} {n}]"  # never asked before: no cached answers
                order = list(conns) if n % 2 == 0 else list(conns)[::-1]
                first = {}
                for name in order:
                    spent, first[name] = ask(conns[name], q, mode)
                    times[name].append(spent)
                same += first["faiss"] == first["postgres"]
            f, p = statistics.median(times["faiss"]), statistics.median(times["postgres"])
            rows.append((mode, times, p / f, same / len(questions)))
        print(f"\n{described} ({health['documents']:,} documents, {health['passages']:,} passages), {len(questions)} distinct questions a mode, k=5, over HTTP\n")
        print("| mode | FAISS p50 / p95 ms | PostgreSQL p50 / p95 ms | PostgreSQL / FAISS p50 | same first document |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for mode, times, ratio, agreement in rows:
            f, p = times["faiss"], times["postgres"]
            print(f"| {mode} | {statistics.median(f):.1f} / {percentile(f, 0.95):.1f} | {statistics.median(p):.1f} / "
                  f"{percentile(p, 0.95):.1f} | {ratio:.2f} | {agreement:.1%} |")
    finally:
        for process in servers:
            process.terminate()
            process.wait(timeout=60)
        cluster.stop("fast")
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
