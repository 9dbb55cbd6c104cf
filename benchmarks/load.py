"""A bounded load test of `kb serve` on loopback: many clients for a fixed time, memory watched.

    .venv/bin/python benchmarks/load.py --index DIR [--clients 8,16,32] [--seconds 60]

Starts a real server over the index in DIR (for example the Cranfield index `kb eval
benchmarks/data/cranfield` builds in index/eval/cranfield, or a 100,000-passage store made by
benchmarks/query_scale.py), with an empty corpus folder so the server only serves what DIR
holds. Then for each client count it runs that many threads for --seconds, each sending, in a
fixed cycle, three real searches (each a question never asked before: GET hybrid k=5, POST
hybrid k=10, GET dense k=5), the first of them again (answered by the cache), and one other
request in turn: a malformed search (k=abc: an intended 400), the document list, or
/api/health. So three requests in five are real searches. It reports real searches per second
and their p50/p95/p99 latency apart from everything else, unexpected errors (anything but the
intended 400s), and the server's resident memory (VmRSS) after warm-up and after each stage.
Loopback only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from serving import CRANFIELD, percentile, run_clients, start_server, status_mb, stop


def requests_for(question: str, n: int) -> list[tuple[str, str, str, bytes | None, int]]:
    """(kind, method, path, body, expected status) for one cycle of a client."""
    fresh = [f"{question} ({n}.{i})" for i in range(3)]
    other = [
        ("other", "GET", "/api/search?" + urllib.parse.urlencode({"q": fresh[0], "k": "abc"}), None, 400),
        ("other", "GET", "/api/documents?per_page=5", None, 200),
        ("other", "GET", "/api/health", None, 200),
    ][n % 3]
    return [
        ("search", "GET", "/api/search?" + urllib.parse.urlencode({"q": fresh[0], "k": 5}), None, 200),
        ("search", "POST", "/api/search", json.dumps({"q": fresh[1], "k": 10}).encode(), 200),
        ("search", "GET", "/api/search?" + urllib.parse.urlencode({"q": fresh[2], "k": 5, "mode": "dense"}), None, 200),
        ("cached", "GET", "/api/search?" + urllib.parse.urlencode({"q": fresh[0], "k": 5}), None, 200),
        other,
    ]


def stage(port: int, questions: list[str], clients: int, seconds: float) -> dict:
    stop_at = time.perf_counter() + seconds
    lock = threading.Lock()
    state = {"requests": 0, "unexpected": 0, "intended_4xx": 0, "examples": [],
             "latencies": {"search": [], "cached": [], "other": []}}

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = offset
        while time.perf_counter() < stop_at:
            for kind, method, path, body, expected in requests_for(questions[n % len(questions)], n):
                if time.perf_counter() >= stop_at:
                    break
                began = time.perf_counter()
                try:
                    headers = {"Content-Type": "application/json"} if body else {}
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except OSError as exc:
                    status = f"{type(exc).__name__}"
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    state["requests"] += 1
                    state["latencies"][kind].append(elapsed)
                    if status == expected:
                        state["intended_4xx"] += expected >= 400
                    else:
                        state["unexpected"] += 1
                        if len(state["examples"]) < 5:
                            state["examples"].append(f"{method} {path[:60]} -> {status}")
            n += clients

    run_clients(client, clients)
    return state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", required=True, help="the index folder to serve (KB_INDEX_DIR)")
    parser.add_argument("--clients", default="8,16,32")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads of the server")
    args = parser.parse_args()
    from kb.evaluation.datasets import load_cranfield

    questions = list(load_cranfield(CRANFIELD).queries.values())
    empty = tempfile.mkdtemp(prefix="kb-load-corpus-")
    server, port, ready = start_server(args.threads, {"KB_INDEX_DIR": args.index, "KB_CORPUS_DIR": empty})
    try:
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=60).read())
        stage(port, questions, 4, 5)  # warm up: caches, lazy set-up, allocator
        start_rss = status_mb(server.pid, "VmRSS")
        print(f"index {args.index}: {health['documents']:,} documents, {health['passages']:,} passages; server ready "
              f"in {ready:.1f} s; RSS after warm-up {start_rss:.0f} MiB; waitress threads {args.threads}")
        print("| clients | s | real searches/s | search p50 ms | p95 | p99 | cached/s | cached p50 ms | other/s "
              "| other p50 ms | unexpected errors | intended 400s | RSS at end MiB |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for clients in (int(c) for c in args.clients.split(",")):
            result = stage(port, questions, clients, args.seconds)
            found = result["latencies"]
            rate = {kind: len(found[kind]) / args.seconds for kind in found}
            print(f"| {clients} | {args.seconds:.0f} | {rate['search']:.1f} | {statistics.median(found['search']):.1f} "
                  f"| {percentile(found['search'], 0.95):.1f} | {percentile(found['search'], 0.99):.1f} "
                  f"| {rate['cached']:.1f} | {statistics.median(found['cached']):.1f} | {rate['other']:.1f} "
                  f"| {statistics.median(found['other']):.1f} | {result['unexpected']} | {result['intended_4xx']:,} "
                  f"| {status_mb(server.pid, 'VmRSS'):.0f} |", flush=True)
            for example in result["examples"]:
                print(f"  unexpected: {example}")
        end_rss = status_mb(server.pid, "VmRSS")
        print(f"memory: {start_rss:.0f} MiB after warm-up, {end_rss:.0f} MiB at the end "
              f"({(end_rss - start_rss) / start_rss:+.1%})")
    finally:
        stop(server)


if __name__ == "__main__":
    main()
